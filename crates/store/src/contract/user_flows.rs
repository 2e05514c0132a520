//! The contract of the user flows: users, sessions, interactions, consent,
//! authorization codes, grants, refresh tokens, their revocation and purge.
//!
//! Every timestamp here lies below [`PURGED_BEFORE`] except in the purge
//! check at the end, which clears what came before and then counts exactly.

use super::{client, ev, hash, join_all, org};
use crate::*;

const NOW: UnixTime = 10_000;
/// Everything stored before the purge check expires before this.
const PURGED_BEFORE: UnixTime = 200_000;

fn user(id: &str, username: &str) -> User {
    User {
        id: id.into(),
        username: username.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        name: Some(format!("{username} example")),
        email: None,
        disabled: false,
        created_at: NOW,
    }
}

fn interaction(id: &str, client_id: &str, expires_at: UnixTime) -> Interaction {
    Interaction {
        id: id.into(),
        browser_hash: hash(150),
        client_id: client_id.into(),
        request: serde_json::json!({"scope": "openid", "state": id}),
        user_id: None,
        auth_time: None,
        created_at: NOW,
        expires_at,
    }
}

fn code(byte: u8, grant_id: &str, client_id: &str, user_id: &str) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: hash(byte),
        grant_id: grant_id.into(),
        client_id: client_id.into(),
        user_id: user_id.into(),
        redirect_uri: Some("https://app.example/cb".into()),
        scope: "openid profile".into(),
        resources: vec!["https://api.example".into()],
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-1".into()),
        auth_time: NOW,
        dpop_jkt: None,
        expires_at: NOW + 60,
        used: false,
    }
}

fn consent(user_id: &str, client_id: &str, scope: &str) -> Consent {
    Consent {
        user_id: user_id.into(),
        client_id: client_id.into(),
        scope: scope.into(),
        resources: vec!["https://api.example".into()],
        granted_at: NOW,
    }
}

fn grant(id: &str, client_id: &str, user_id: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: client_id.into(),
        user_id: user_id.into(),
        scope: "openid offline_access".into(),
        resources: vec!["https://api.example".into(), "https://b.example".into()],
        auth_time: NOW,
        created_at: NOW,
        expires_at: NOW + 50_000,
        revoked: false,
        dpop_jkt: Some("jkt-1".into()),
    }
}

fn refresh(byte: u8, grant: &Grant) -> RefreshToken {
    RefreshToken {
        token_hash: hash(byte),
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        issued_at: NOW,
        expires_at: NOW + 40_000,
        used: false,
    }
}

fn access(jti: &str) -> GrantAccessToken {
    GrantAccessToken {
        jti: jti.into(),
        expires_at: NOW + 3_600,
    }
}

/// A code's first redemption: the new grant, a refresh token and an access token.
fn redeem(grant: &Grant, refresh_byte: u8, jti: &str) -> Issue {
    Issue {
        grant_id: grant.id.clone(),
        grant: Some(grant.clone()),
        rotated_from: None,
        refresh_token: Some(refresh(refresh_byte, grant)),
        access_token: access(jti),
        bind_dpop_jkt: None,
    }
}

/// A refresh: `from` is exchanged for `to` within the existing grant.
fn rotate(grant: &Grant, from: u8, to: u8, jti: &str) -> Issue {
    Issue {
        grant_id: grant.id.clone(),
        grant: None,
        rotated_from: Some(hash(from)),
        refresh_token: Some(refresh(to, grant)),
        access_token: access(jti),
        bind_dpop_jkt: None,
    }
}

fn revoke_grant(grant: &Grant) -> Change {
    Change::RevokeGrant {
        grant_id: grant.id.clone(),
        client_id: grant.client_id.clone(),
        user_id: grant.user_id.clone(),
        now: NOW,
    }
}

pub(super) async fn user_flows(store: &dyn Store) {
    store.insert_organization(org("uf")).await.unwrap();
    for (id, rat) in [("uf-app", 110), ("uf-other", 111)] {
        store
            .insert_client(client(id, "uf", rat), None, ev("uf.register"))
            .await
            .unwrap();
    }
    users(store).await;
    sessions(store).await;
    interactions(store).await;
    codes(store).await;
    issuance(store).await;
    revocation(store).await;
    consent_and_user_revocation(store).await;
    client_deletion(store).await;
    metadata_documents(store).await;
    dpop_binding(store).await;
    purge(store).await;
    audited(store).await;
}

async fn users(store: &dyn Store) {
    let alice = user("u-alice", "alice");
    assert!(store
        .insert_user(alice.clone(), ev("uf.user.create"))
        .await
        .unwrap());
    assert!(
        !store
            .insert_user(user("u-alice-2", "alice"), ev("uf.user.create"))
            .await
            .unwrap(),
        "a taken username stores nothing"
    );
    assert!(store.user("u-alice-2").await.unwrap().is_none());
    let same_id = store
        .insert_user(user("u-alice", "alice-2"), ev("uf.user.create"))
        .await;
    assert!(
        matches!(same_id, Err(Error::Conflict(_))),
        "an id is never reused: {same_id:?}"
    );
    assert!(store.user_by_username("alice-2").await.unwrap().is_none());
    assert!(store
        .insert_user(user("u-bob", "bob"), ev("uf.user.create"))
        .await
        .unwrap());
    assert_eq!(store.user("u-alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        store.user_by_username("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert!(store.user("nobody").await.unwrap().is_none());
    assert!(store.user_by_username("nobody").await.unwrap().is_none());
    let names = |users: Vec<User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    assert_eq!(names(store.users(10).await.unwrap()), ["alice", "bob"]);
    assert_eq!(names(store.users(1).await.unwrap()), ["alice"]);
}

async fn sessions(store: &dyn Store) {
    let session = Session {
        id_hash: hash(100),
        user_id: "u-alice".into(),
        auth_time: NOW,
        expires_at: NOW + 3_600,
    };
    store.insert_session(session.clone()).await.unwrap();
    assert_eq!(
        store.session(&hash(100)).await.unwrap(),
        Some(session.clone())
    );
    assert!(
        store.insert_session(session).await.is_err(),
        "a session id is unique"
    );
    assert!(store.session(&hash(101)).await.unwrap().is_none());
    store.delete_session(&hash(100)).await.unwrap();
    assert!(store.session(&hash(100)).await.unwrap().is_none());
    store.delete_session(&hash(100)).await.unwrap();
}

async fn interactions(store: &dyn Store) {
    let pending = interaction("i-1", "uf-app", NOW + 600);
    store.insert_interaction(pending.clone()).await.unwrap();
    assert_eq!(store.interaction("i-1").await.unwrap(), Some(pending));
    assert!(store
        .set_interaction_user("i-1", "u-alice", NOW + 5)
        .await
        .unwrap());
    let signed_in = store.interaction("i-1").await.unwrap().unwrap();
    assert_eq!(
        (signed_in.user_id.as_deref(), signed_in.auth_time),
        (Some("u-alice"), Some(NOW + 5))
    );
    assert!(!store
        .set_interaction_user("i-gone", "u-alice", NOW)
        .await
        .unwrap());

    // Completing stores the code and the consent, once.
    let first = code(120, "g-1", "uf-app", "u-alice");
    assert!(store
        .complete_interaction(
            "i-1",
            first.clone(),
            Some(consent("u-alice", "uf-app", "openid")),
            Some(ev("uf.consent")),
        )
        .await
        .unwrap());
    assert!(store.interaction("i-1").await.unwrap().is_none());
    assert!(
        !store
            .complete_interaction(
                "i-1",
                code(121, "g-x", "uf-app", "u-alice"),
                Some(consent("u-alice", "uf-app", "openid email")),
                Some(ev("uf.consent")),
            )
            .await
            .unwrap(),
        "a form submitted twice issues one code"
    );
    assert!(
        store.take_code(&hash(121)).await.unwrap().is_none(),
        "the refused completion stored no code"
    );
    assert_eq!(
        store.consent("u-alice", "uf-app").await.unwrap(),
        Some(consent("u-alice", "uf-app", "openid")),
        "nor replaced the consent"
    );

    // A later consent is merged into the earlier one (scopes and resources
    // united, its own time); no consent keeps it.
    store
        .insert_interaction(interaction("i-2", "uf-app", NOW + 600))
        .await
        .unwrap();
    let mut wider = consent("u-alice", "uf-app", "openid profile");
    wider.resources = vec![];
    wider.granted_at = NOW + 10;
    assert!(store
        .complete_interaction(
            "i-2",
            code(122, "g-2", "uf-app", "u-alice"),
            Some(wider.clone()),
            None
        )
        .await
        .unwrap());
    store
        .insert_interaction(interaction("i-3", "uf-other", NOW + 600))
        .await
        .unwrap();
    assert!(store
        .complete_interaction(
            "i-3",
            code(123, "g-3", "uf-other", "u-alice"),
            Some(consent("u-alice", "uf-other", "openid")),
            None
        )
        .await
        .unwrap());
    let merged = Consent {
        resources: vec!["https://api.example".into()],
        ..wider.clone()
    };
    assert_eq!(
        store.consent("u-alice", "uf-app").await.unwrap(),
        Some(merged.clone())
    );
    assert_eq!(
        store.consents("u-alice").await.unwrap(),
        [merged, consent("u-alice", "uf-other", "openid")],
        "by client id"
    );
    // Concurrent consents to one client each add their scopes: none is lost.
    let racers = ["email", "calendar", "files", "mail"];
    let ids: Vec<String> = (0..racers.len()).map(|i| format!("i-race-{i}")).collect();
    for id in &ids {
        store
            .insert_interaction(interaction(id, "uf-race", NOW + 600))
            .await
            .unwrap();
    }
    let results = join_all(racers.iter().enumerate().map(|(i, scope)| {
        store.complete_interaction(
            &ids[i],
            code(240 + i as u8, &format!("g-race-{i}"), "uf-race", "u-alice"),
            Some(consent("u-alice", "uf-race", scope)),
            None,
        )
    }))
    .await;
    assert!(results.into_iter().all(|r| r.unwrap()));
    let raced = store.consent("u-alice", "uf-race").await.unwrap().unwrap();
    let mut granted: Vec<&str> = raced.scope.split(' ').collect();
    granted.sort_unstable();
    assert_eq!(granted, ["calendar", "email", "files", "mail"]);
    assert!(store.consents("u-bob").await.unwrap().is_empty());
    assert!(store.consent("u-bob", "uf-app").await.unwrap().is_none());

    // Concurrent submissions of one form: one code.
    store
        .insert_interaction(interaction("i-4", "uf-app", NOW + 600))
        .await
        .unwrap();
    let racing = join_all((0..4).map(|i| {
        store.complete_interaction("i-4", code(124 + i, "g-4", "uf-app", "u-alice"), None, None)
    }))
    .await;
    assert_eq!(
        racing.iter().filter(|r| *r.as_ref().unwrap()).count(),
        1,
        "{racing:?}"
    );

    // Denial ends the interaction without a code.
    store
        .insert_interaction(interaction("i-5", "uf-app", NOW + 600))
        .await
        .unwrap();
    assert!(store.finish_interaction("i-5").await.unwrap());
    assert!(!store.finish_interaction("i-5").await.unwrap());
    assert!(store.interaction("i-5").await.unwrap().is_none());
}

async fn codes(store: &dyn Store) {
    // Of concurrent redemptions exactly one sees the code unused.
    let first_hash = hash(120);
    let taken = join_all((0..6).map(|_| store.take_code(&first_hash))).await;
    let taken: Vec<AuthorizationCode> = taken.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(
        taken.iter().filter(|c| !c.used).count(),
        1,
        "exactly one first use: {taken:?}"
    );
    let first = code(120, "g-1", "uf-app", "u-alice");
    for c in &taken {
        assert_eq!(
            AuthorizationCode {
                used: false,
                ..c.clone()
            },
            first,
            "the code as stored"
        );
    }
    assert!(
        store.take_code(&hash(120)).await.unwrap().unwrap().used,
        "a replay"
    );
    assert!(store.take_code(&hash(199)).await.unwrap().is_none());
}

async fn issuance(store: &dyn Store) {
    let g1 = grant("g-1", "uf-app", "u-alice");
    assert!(store.issue(redeem(&g1, 130, "at-1")).await.unwrap());
    assert_eq!(
        store.refresh_token(&hash(130)).await.unwrap(),
        Some((refresh(130, &g1), g1.clone()))
    );
    assert!(
        !store.issue(redeem(&g1, 131, "at-x")).await.unwrap(),
        "the grant exists already"
    );
    assert!(
        store.refresh_token(&hash(131)).await.unwrap().is_none(),
        "a refused issuance stores nothing"
    );

    // Rotation: the old token is used, the new one belongs to the grant.
    assert!(store.issue(rotate(&g1, 130, 132, "at-2")).await.unwrap());
    let (old, _) = store.refresh_token(&hash(130)).await.unwrap().unwrap();
    assert!(old.used);
    let (new, of) = store.refresh_token(&hash(132)).await.unwrap().unwrap();
    assert_eq!((new.used, of.id.as_str()), (false, "g-1"));
    assert!(
        !store.issue(rotate(&g1, 130, 133, "at-3")).await.unwrap(),
        "a used refresh token is refused"
    );
    assert!(store.refresh_token(&hash(133)).await.unwrap().is_none());

    // Concurrent rotations of one token: one wins.
    let racing =
        join_all((0..4u8).map(|i| store.issue(rotate(&g1, 132, 134 + i, &format!("at-race-{i}")))))
            .await;
    assert_eq!(
        racing.iter().filter(|r| *r.as_ref().unwrap()).count(),
        1,
        "{racing:?}"
    );
    let mut stored = 0;
    for i in 0..4u8 {
        stored += usize::from(store.refresh_token(&hash(134 + i)).await.unwrap().is_some());
    }
    assert_eq!(stored, 1, "only the winner's refresh token is stored");

    // A refresh needs an existing grant.
    let ghost = grant("g-ghost", "uf-app", "u-alice");
    let mut no_grant = rotate(&ghost, 132, 140, "at-ghost");
    no_grant.rotated_from = None;
    assert!(!store.issue(no_grant).await.unwrap());
    assert!(store.refresh_token(&hash(140)).await.unwrap().is_none());

    // A refused rotation undoes the grant stored before it in the same issuance.
    let g5 = grant("g-5", "uf-app", "u-alice");
    let mut both = redeem(&g5, 141, "at-5");
    both.rotated_from = Some(hash(130));
    assert!(!store.issue(both).await.unwrap());
    assert!(
        store.issue(redeem(&g5, 141, "at-5")).await.unwrap(),
        "the refused issuance left no grant behind"
    );

    // Without a refresh token (no offline access), only the access token is recorded.
    let g6 = grant("g-6", "uf-app", "u-alice");
    let mut bare = redeem(&g6, 142, "at-6");
    bare.refresh_token = None;
    assert!(store.issue(bare).await.unwrap());
    assert!(store.refresh_token(&hash(142)).await.unwrap().is_none());
    assert!(store
        .apply_change(revoke_grant(&g6), ev("uf.revoke"))
        .await
        .unwrap());
    assert!(store.access_token_revoked("at-6").await.unwrap());

    // Parts of an issuance that name another grant are a caller's bug.
    let mut mixed = redeem(&g6, 143, "at-7");
    mixed.grant_id = "g-other".into();
    assert!(store.issue(mixed).await.is_err());
}

async fn revocation(store: &dyn Store) {
    let g1 = grant("g-1", "uf-app", "u-alice");
    let mut winner = None;
    for i in 0..4u8 {
        if store.refresh_token(&hash(134 + i)).await.unwrap().is_some() {
            winner = Some(i);
        }
    }
    let winner = winner.expect("one rotation won");
    assert!(!store.access_token_revoked("at-1").await.unwrap());
    assert!(store
        .apply_change(revoke_grant(&g1), ev("uf.revoke"))
        .await
        .unwrap());
    for jti in ["at-1", "at-2"] {
        assert!(store.access_token_revoked(jti).await.unwrap(), "{jti}");
    }
    assert!(store
        .access_token_revoked(&format!("at-race-{winner}"))
        .await
        .unwrap());
    assert!(
        !store.access_token_revoked("at-3").await.unwrap(),
        "a refused issuance recorded no access token"
    );
    let (token, of) = store
        .refresh_token(&hash(134 + winner))
        .await
        .unwrap()
        .unwrap();
    assert!(of.revoked, "the grant is revoked");
    assert!(token.used, "its refresh tokens stop working");
    assert_eq!(
        Grant {
            revoked: false,
            ..of
        },
        g1,
        "and otherwise unchanged"
    );
    assert!(
        !store
            .apply_change(revoke_grant(&g1), ev("uf.revoke"))
            .await
            .unwrap(),
        "revoked already"
    );
    let mut refresh_revoked = rotate(&g1, 134 + winner, 150, "at-after");
    assert!(!store.issue(refresh_revoked.clone()).await.unwrap());
    refresh_revoked.rotated_from = None;
    assert!(
        !store.issue(refresh_revoked).await.unwrap(),
        "a revoked grant issues nothing"
    );

    // A replayed code revokes a grant before its first redemption stored it.
    let g2 = grant("g-2", "uf-app", "u-alice");
    assert!(store
        .apply_change(revoke_grant(&g2), ev("uf.revoke"))
        .await
        .unwrap());
    assert!(
        !store.issue(redeem(&g2, 151, "at-g2")).await.unwrap(),
        "the first redemption comes too late"
    );
    assert!(store.refresh_token(&hash(151)).await.unwrap().is_none());
    assert!(!store
        .apply_change(revoke_grant(&g2), ev("uf.revoke"))
        .await
        .unwrap());

    // Refresh refused after revocation even though the token is unused:
    // the grant itself is checked.
    let g7 = grant("g-7", "uf-other", "u-alice");
    assert!(store.issue(redeem(&g7, 152, "at-g7")).await.unwrap());
    assert!(store
        .apply_change(revoke_grant(&g7), ev("uf.revoke"))
        .await
        .unwrap());
    assert!(!store.issue(rotate(&g7, 152, 153, "at-g7-2")).await.unwrap());
    assert!(store.access_token_revoked("at-g7").await.unwrap());
    assert!(!store.access_token_revoked("at-g7-2").await.unwrap());
}

async fn consent_and_user_revocation(store: &dyn Store) {
    // Alice: a live grant to uf-app, one to uf-other, an unredeemed code to uf-app.
    let app = grant("g-c1", "uf-app", "u-alice");
    let other = grant("g-c2", "uf-other", "u-alice");
    assert!(store.issue(redeem(&app, 160, "at-c1")).await.unwrap());
    assert!(store.issue(redeem(&other, 161, "at-c2")).await.unwrap());
    store
        .insert_interaction(interaction("i-c", "uf-app", NOW + 600))
        .await
        .unwrap();
    assert!(store
        .complete_interaction("i-c", code(162, "g-c3", "uf-app", "u-alice"), None, None)
        .await
        .unwrap());
    let withdraw = |user_id: &str, client_id: &str| Change::RevokeConsent {
        user_id: user_id.into(),
        client_id: client_id.into(),
    };
    assert!(store
        .apply_change(withdraw("u-alice", "uf-app"), ev("uf.consent.revoke"))
        .await
        .unwrap());
    assert!(store.consent("u-alice", "uf-app").await.unwrap().is_none());
    assert!(
        store
            .refresh_token(&hash(160))
            .await
            .unwrap()
            .unwrap()
            .1
            .revoked
    );
    assert!(store.access_token_revoked("at-c1").await.unwrap());
    assert!(
        store.take_code(&hash(162)).await.unwrap().is_none(),
        "an unredeemed code is withdrawn with the consent"
    );
    let (token, of) = store.refresh_token(&hash(161)).await.unwrap().unwrap();
    assert!(
        !of.revoked && !token.used,
        "the grant to another client stays"
    );
    assert!(!store.access_token_revoked("at-c2").await.unwrap());
    assert!(store
        .consent("u-alice", "uf-other")
        .await
        .unwrap()
        .is_some());
    assert!(
        !store
            .apply_change(withdraw("u-alice", "uf-app"), ev("uf.consent.revoke"))
            .await
            .unwrap(),
        "nothing left to withdraw"
    );
    assert!(!store
        .apply_change(withdraw("u-bob", "uf-app"), ev("uf.consent.revoke"))
        .await
        .unwrap());

    // Disabling Bob ends his sessions and sign-ins and revokes his grants.
    let bob = grant("g-bob", "uf-other", "u-bob");
    assert!(store.issue(redeem(&bob, 163, "at-bob")).await.unwrap());
    store
        .insert_session(Session {
            id_hash: hash(164),
            user_id: "u-bob".into(),
            auth_time: NOW,
            expires_at: NOW + 3_600,
        })
        .await
        .unwrap();
    store
        .insert_interaction(interaction("i-bob", "uf-other", NOW + 600))
        .await
        .unwrap();
    assert!(store
        .set_interaction_user("i-bob", "u-bob", NOW)
        .await
        .unwrap());
    let disable = |user_id: &str, disabled: bool| Change::SetUserDisabled {
        user_id: user_id.into(),
        disabled,
    };
    assert!(store
        .apply_change(disable("u-bob", true), ev("uf.user.disable"))
        .await
        .unwrap());
    assert!(store.user("u-bob").await.unwrap().unwrap().disabled);
    assert!(store.session(&hash(164)).await.unwrap().is_none());
    assert!(store.interaction("i-bob").await.unwrap().is_none());
    assert!(
        store
            .refresh_token(&hash(163))
            .await
            .unwrap()
            .unwrap()
            .1
            .revoked
    );
    assert!(store.access_token_revoked("at-bob").await.unwrap());
    assert!(
        !store
            .apply_change(disable("u-bob", true), ev("uf.user.disable"))
            .await
            .unwrap(),
        "disabled already"
    );
    assert!(!store
        .apply_change(disable("nobody", true), ev("uf.user.disable"))
        .await
        .unwrap());
    assert!(
        !store
            .refresh_token(&hash(161))
            .await
            .unwrap()
            .unwrap()
            .1
            .revoked,
        "another user's grants stay"
    );
    assert!(store
        .apply_change(disable("u-bob", false), ev("uf.user.disable"))
        .await
        .unwrap());
    assert!(!store.user("u-bob").await.unwrap().unwrap().disabled);
    assert!(!store
        .apply_change(disable("u-bob", false), ev("uf.user.disable"))
        .await
        .unwrap());
    assert!(
        store
            .refresh_token(&hash(163))
            .await
            .unwrap()
            .unwrap()
            .1
            .revoked,
        "enabling again revives nothing"
    );
}

async fn client_deletion(store: &dyn Store) {
    // Everything a client was granted goes with it, by either way of deleting.
    for (client_id, rat, byte) in [("uf-del-1", 170u8, 171u8), ("uf-del-2", 175, 176)] {
        store
            .insert_client(client(client_id, "uf", rat), None, ev("uf.register"))
            .await
            .unwrap();
        let g = grant(&format!("g-{client_id}"), client_id, "u-alice");
        assert!(store
            .issue(redeem(&g, byte, &format!("at-{client_id}")))
            .await
            .unwrap());
        let done = format!("i-{client_id}");
        store
            .insert_interaction(interaction(&done, client_id, NOW + 600))
            .await
            .unwrap();
        assert!(store
            .complete_interaction(
                &done,
                code(byte + 1, "g-next", client_id, "u-alice"),
                Some(consent("u-alice", client_id, "openid")),
                None
            )
            .await
            .unwrap());
        store
            .insert_interaction(interaction(
                &format!("i-{client_id}-pending"),
                client_id,
                NOW + 600,
            ))
            .await
            .unwrap();
    }
    assert!(store
        .apply_change(
            Change::DeleteClient {
                client_id: "uf-del-1".into()
            },
            ev("uf.client.delete")
        )
        .await
        .unwrap());
    assert!(store
        .delete_client("uf-del-2", &hash(175), ev("uf.client.delete"))
        .await
        .unwrap());
    for (client_id, byte) in [("uf-del-1", 171u8), ("uf-del-2", 176)] {
        assert!(store.client(client_id).await.unwrap().is_none());
        assert!(store.consent("u-alice", client_id).await.unwrap().is_none());
        assert!(store.take_code(&hash(byte + 1)).await.unwrap().is_none());
        assert!(store.refresh_token(&hash(byte)).await.unwrap().is_none());
        assert!(store
            .interaction(&format!("i-{client_id}-pending"))
            .await
            .unwrap()
            .is_none());
        // The grant's access tokens stay revoked until they expire, so a
        // client id that comes back does not revive them.
        assert!(store
            .access_token_revoked(&format!("at-{client_id}"))
            .await
            .unwrap());
        // With the grant gone, revoking it records a fresh revoked grant.
        let g = grant(&format!("g-{client_id}"), client_id, "u-alice");
        assert!(store
            .apply_change(revoke_grant(&g), ev("uf.revoke"))
            .await
            .unwrap());
    }
    assert!(
        store
            .consent("u-alice", "uf-other")
            .await
            .unwrap()
            .is_some(),
        "other clients keep theirs"
    );
}

/// A metadata-document client: its stored copy is refreshed only while it
/// is the same document, and a changed document replaces the client (and
/// everything granted to the old one) in one step, once.
async fn metadata_documents(store: &dyn Store) {
    let id = "https://app.example/client.json";
    let mut record = client(id, "uf", 180);
    record.document = Some(DocumentState {
        fresh_until: NOW + 60,
        digest: hash(181),
    });
    store
        .insert_client(record.clone(), None, ev("uf.document.register"))
        .await
        .unwrap();
    assert_eq!(
        store.client(id).await.unwrap().unwrap().document,
        record.document
    );
    assert!(!store
        .refresh_document(id, &hash(182), NOW + 120, NOW + 9_000)
        .await
        .unwrap());
    assert!(store
        .refresh_document(id, &hash(181), NOW + 120, NOW + 9_000)
        .await
        .unwrap());
    let stored = store.client(id).await.unwrap().unwrap();
    let document = stored.document.unwrap();
    assert_eq!(
        (document.fresh_until, document.digest),
        (NOW + 120, hash(181))
    );
    assert_eq!(
        stored.expires_at,
        Some(NOW + 9_000),
        "the lifetime moves on"
    );

    let g = grant("g-doc", id, "u-alice");
    assert!(store.issue(redeem(&g, 183, "at-doc")).await.unwrap());
    let done = "i-doc";
    store
        .insert_interaction(interaction(done, id, NOW + 600))
        .await
        .unwrap();
    assert!(store
        .complete_interaction(
            done,
            code(184, "g-doc-next", id, "u-alice"),
            Some(consent("u-alice", id, "openid")),
            None
        )
        .await
        .unwrap());

    let mut changed = client(id, "uf", 185);
    changed.document = Some(DocumentState {
        fresh_until: NOW + 300,
        digest: hash(186),
    });
    let before = store.audit_entries(0, 10_000).await.unwrap().len();
    assert!(
        !store
            .replace_client(&hash(182), changed.clone(), ev("uf.document.replace"))
            .await
            .unwrap(),
        "a replacement expecting another document changes nothing"
    );
    assert!(store
        .replace_client(&hash(181), changed.clone(), ev("uf.document.replace"))
        .await
        .unwrap());
    assert!(
        !store
            .replace_client(&hash(181), changed.clone(), ev("uf.document.replace"))
            .await
            .unwrap(),
        "a second replacement of the same document finds it gone"
    );
    assert_eq!(
        store.audit_entries(0, 10_000).await.unwrap().len(),
        before + 1
    );
    let now_stored = store.client(id).await.unwrap().unwrap();
    assert_eq!(now_stored.document, changed.document);
    assert_eq!(now_stored.registration_token_hash, hash(185));
    assert!(store.consent("u-alice", id).await.unwrap().is_none());
    assert!(store.take_code(&hash(184)).await.unwrap().is_none());
    assert!(store.refresh_token(&hash(183)).await.unwrap().is_none());
    assert!(store.access_token_revoked("at-doc").await.unwrap());

    // Removal compares the document, and an administrator's revocation
    // stands against both replacement and removal.
    let remove = |digest: u8| Change::RemoveDocumentClient {
        client_id: id.into(),
        expected_digest: hash(digest),
    };
    assert!(!store
        .apply_change(remove(181), ev("uf.document.removed"))
        .await
        .unwrap());
    assert!(store
        .apply_change(
            Change::RevokeClient {
                client_id: id.into()
            },
            ev("uf.document.revoke")
        )
        .await
        .unwrap());
    assert!(!store
        .replace_client(&hash(186), changed.clone(), ev("uf.document.replace"))
        .await
        .unwrap());
    assert!(!store
        .refresh_document(id, &hash(186), NOW + 600, NOW + 9_000)
        .await
        .unwrap());
    assert!(!store
        .apply_change(remove(186), ev("uf.document.removed"))
        .await
        .unwrap());
    assert_eq!(
        store.client(id).await.unwrap().unwrap().status,
        ClientStatus::Revoked
    );
    assert!(store
        .apply_change(
            Change::DeleteClient {
                client_id: id.into()
            },
            ev("uf.document.removed")
        )
        .await
        .unwrap());
    // A live one is removed with its digest.
    store
        .insert_client(changed.clone(), None, ev("uf.document.register"))
        .await
        .unwrap();
    assert!(store
        .apply_change(remove(186), ev("uf.document.removed"))
        .await
        .unwrap());
    assert!(store.client(id).await.unwrap().is_none());
}

/// A grant without a DPoP key is bound at a refresh, once and for good.
async fn dpop_binding(store: &dyn Store) {
    let g = grant("g-bind", "uf-app", "u-alice");
    assert!(store.issue(redeem(&g, 190, "at-b1")).await.unwrap());
    let mut bound = rotate(&g, 190, 191, "at-b2");
    bound.bind_dpop_jkt = Some("jkt-1".into());
    assert!(store.issue(bound).await.unwrap());
    let mut again = rotate(&g, 191, 192, "at-b3");
    again.bind_dpop_jkt = Some("jkt-2".into());
    assert!(store.issue(again).await.unwrap());
    let (_, stored) = store.refresh_token(&hash(192)).await.unwrap().unwrap();
    assert_eq!(
        stored.dpop_jkt.as_deref(),
        Some("jkt-1"),
        "a bound grant is never rebound"
    );
}

async fn purge(store: &dyn Store) {
    // Clear everything stored so far, then count exactly.
    store.purge_expired(PURGED_BEFORE).await.unwrap();
    assert!(store.refresh_token(&hash(161)).await.unwrap().is_none());
    assert!(!store.access_token_revoked("at-c1").await.unwrap());

    let t = PURGED_BEFORE + 100_000;
    store
        .insert_session(Session {
            id_hash: hash(180),
            user_id: "u-alice".into(),
            auth_time: t,
            expires_at: t,
        })
        .await
        .unwrap();
    store
        .insert_interaction(interaction("i-p1", "uf-app", t))
        .await
        .unwrap();
    store
        .insert_interaction(interaction("i-p2", "uf-app", t + 100_000))
        .await
        .unwrap();
    let mut expiring = code(181, "g-p0", "uf-app", "u-alice");
    expiring.expires_at = t;
    assert!(store
        .complete_interaction("i-p2", expiring, None, None)
        .await
        .unwrap());
    // A grant that ends takes its tokens along, whatever their expiry.
    let short = Grant {
        expires_at: t,
        ..grant("g-p1", "uf-app", "u-alice")
    };
    let mut issued = redeem(&short, 182, "at-p1");
    issued.access_token.expires_at = t + 200_000;
    if let Some(r) = issued.refresh_token.as_mut() {
        r.expires_at = t + 200_000;
    }
    assert!(store.issue(issued).await.unwrap());
    // Tokens that end within a longer grant go alone.
    let long = Grant {
        expires_at: t + 600_000,
        ..grant("g-p2", "uf-app", "u-alice")
    };
    let mut issued = redeem(&long, 183, "at-p2");
    issued.access_token.expires_at = t;
    if let Some(r) = issued.refresh_token.as_mut() {
        r.expires_at = t;
    }
    assert!(store.issue(issued).await.unwrap());
    let mut later = rotate(&long, 183, 184, "at-p3");
    later.access_token.expires_at = t + 200_000;
    if let Some(r) = later.refresh_token.as_mut() {
        r.expires_at = t + 200_000;
    }
    assert!(store.issue(later).await.unwrap());

    assert_eq!(store.purge_expired(t).await.unwrap(), 0, "nothing before t");
    // Session, interaction; grant g-p1 with its refresh and access token;
    // g-p2's first refresh and access token. The code stays a day past its
    // expiry so that a late replay still revokes its grant.
    assert_eq!(store.purge_expired(t + 1).await.unwrap(), 7);
    assert!(store.session(&hash(180)).await.unwrap().is_none());
    assert!(store.interaction("i-p1").await.unwrap().is_none());
    assert!(store.refresh_token(&hash(182)).await.unwrap().is_none());
    assert!(store.refresh_token(&hash(183)).await.unwrap().is_none());
    assert!(store.refresh_token(&hash(184)).await.unwrap().is_some());
    // Revoking g-p2 now copies only its remaining access token.
    assert!(store
        .apply_change(revoke_grant(&long), ev("uf.revoke"))
        .await
        .unwrap());
    assert!(store.access_token_revoked("at-p3").await.unwrap());
    assert!(!store.access_token_revoked("at-p2").await.unwrap());
    // Last: the code, the refresh and access token of g-p2 and its revoked
    // copy, then the grant.
    assert_eq!(store.purge_expired(t + 200_001).await.unwrap(), 4);
    assert!(store.take_code(&hash(181)).await.unwrap().is_none());
    assert_eq!(store.purge_expired(t + 600_001).await.unwrap(), 1);
    assert!(
        store.user("u-alice").await.unwrap().is_some(),
        "users are never purged"
    );
    assert!(store
        .consent("u-alice", "uf-other")
        .await
        .unwrap()
        .is_some());
}

/// Writes that stored something appended their entry; refusals did not.
async fn audited(store: &dyn Store) {
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    let count = |action: &str| {
        entries
            .iter()
            .filter(|e| e.event().unwrap().action == action)
            .count()
    };
    assert_eq!(
        count("uf.user.create"),
        2,
        "alice and bob, not the refusals"
    );
    assert_eq!(count("uf.consent"), 1, "the first completion only");
    // g-6, g-1, g-2, g-7, the two deleted clients' grants, g-p2.
    assert_eq!(count("uf.revoke"), 7);
    assert_eq!(count("uf.consent.revoke"), 1);
    assert_eq!(count("uf.user.disable"), 2, "disable and enable");
    assert_eq!(count("uf.client.delete"), 2);
}
