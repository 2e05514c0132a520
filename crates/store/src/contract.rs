//! The storage contract: one suite every backend must pass. Backends call
//! [`run`] from their own tests against a fresh, empty store.

use crate::audit::AuditEvent;
use crate::*;

mod user_flows;

fn ev(action: &str) -> AuditEvent {
    AuditEvent::new(1_700_000_000, "system", action, "done")
}

fn hash(byte: u8) -> TokenHash {
    [byte; 32]
}

fn org(id: &str) -> Organization {
    Organization {
        id: id.into(),
        name: format!("name-{id}"),
        created_at: 1_700_000_000,
        status: "active".into(),
    }
}

fn client(id: &str, org_id: &str, rat: u8) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        organization_id: org_id.into(),
        initial_access_token_id: Some("iat-1".into()),
        metadata: serde_json::json!({"client_name": id, "grant_types": ["client_credentials"]}),
        secret_hash: Some(hash(9)),
        secret_expires_at: Some(1_800_000_000),
        registration_token_hash: hash(rat),
        issued_at: 1_700_000_001,
        updated_at: 1_700_000_001,
        profile: "default".into(),
        policy_version: "v1".into(),
        status: ClientStatus::Active,
        expires_at: Some(1_900_000_000),
        approval: None,
        approved_until: None,
        last_used_at: None,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        document: None,
    }
}

fn iat(id: &str, org_id: &str, hash_byte: u8, max_uses: Option<i64>) -> InitialAccessToken {
    InitialAccessToken {
        id: id.into(),
        organization_id: org_id.into(),
        token_hash: hash(hash_byte),
        created_at: 5,
        expires_at: Some(99),
        revoked: false,
        profile: "default".into(),
        max_uses,
        uses: 0,
        allowed_cidr: Some("10.0.0.0/8".into()),
    }
}

/// Runs every contract check; panics with the name of the failed rule.
pub async fn run(store: &dyn Store) {
    bootstrap_once(store).await;
    organizations(store).await;
    initial_access_tokens(store).await;
    clients(store).await;
    concurrent_inserts_are_all_durable(store).await;
    initial_access_token_uses_are_counted_atomically(store).await;
    quota_is_exact_under_concurrency(store).await;
    signing_keys(store).await;
    lifecycle_changes(store).await;
    point_of_use(store).await;
    user_flows::user_flows(store).await;
    audit_chain(store).await;
}

async fn lifecycle_changes(store: &dyn Store) {
    let change = |c: Change| store.apply_change(c, ev("lifecycle"));
    let approve = |id: &str| Change::ApproveClient {
        client_id: id.into(),
        approval: "{\"by\":\"admin\"}".into(),
        until: Some(500),
    };
    assert!(change(approve("pending-1")).await.unwrap());
    let approved = store.client("pending-1").await.unwrap().unwrap();
    assert_eq!(
        (approved.status, approved.approval.as_deref()),
        (ClientStatus::Active, Some("{\"by\":\"admin\"}"))
    );
    assert!(
        !change(approve("pending-1")).await.unwrap(),
        "only a pending client can be approved"
    );
    assert_eq!(
        store.lapsed_approvals(400, 10).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.lapsed_approvals(600, 10).await.unwrap(),
        ["pending-1"]
    );
    assert!(change(Change::LapseApproval {
        client_id: "pending-1".into(),
        now: 600
    })
    .await
    .unwrap());
    assert_eq!(
        store.client("pending-1").await.unwrap().unwrap().status,
        ClientStatus::Pending,
        "re-approval needed"
    );
    assert!(
        change(approve("pending-1")).await.unwrap(),
        "and it can be approved again"
    );
    let mut old = client("pending-old", "o1", 53);
    old.status = ClientStatus::Pending;
    old.issued_at = 100;
    store
        .insert_client(old, None, ev("client.register"))
        .await
        .unwrap();
    assert_eq!(
        store.pending_clients_before(1_000, 10).await.unwrap(),
        ["pending-old"]
    );
    let expire = Change::ExpireClient {
        client_id: "pending-old".into(),
        now: 1_000,
    };
    assert!(change(expire.clone()).await.unwrap());
    assert!(!change(expire).await.unwrap(), "only once");
    assert_eq!(
        store.client("pending-old").await.unwrap().unwrap().status,
        ClientStatus::Expired
    );
    let reject = Change::RejectClient {
        client_id: "c1-gone".into(),
        approval: "{}".into(),
    };
    assert!(!change(reject).await.unwrap());

    store.insert_organization(org("o2")).await.unwrap();
    store
        .insert_initial_access_token(iat("iat-o2", "o2", 60, None), ev("iat.issue"))
        .await
        .unwrap();
    store
        .insert_client(client("o2-client", "o2", 61), None, ev("client.register"))
        .await
        .unwrap();
    let suspend = Change::SetOrganizationStatus {
        organization_id: "o2".into(),
        from: "active".into(),
        to: "suspended".into(),
    };
    assert!(change(suspend.clone()).await.unwrap());
    assert!(!change(suspend).await.unwrap(), "already suspended");
    assert_eq!(
        store
            .organization_by_id("o2")
            .await
            .unwrap()
            .unwrap()
            .status,
        "suspended"
    );
    assert!(change(Change::OffboardOrganization {
        organization_id: "o2".into()
    })
    .await
    .unwrap());
    assert!(!change(Change::OffboardOrganization {
        organization_id: "o2".into()
    })
    .await
    .unwrap());
    assert_eq!(
        store.client("o2-client").await.unwrap().unwrap().status,
        ClientStatus::Revoked
    );
    let tokens = store.initial_access_tokens("o2").await.unwrap();
    assert!(tokens.iter().all(|t| t.revoked) && tokens.len() == 1);
    assert!(store
        .organizations()
        .await
        .unwrap()
        .iter()
        .any(|o| o.id == "o2" && o.status == "offboarded"));
    assert!(
        change(Change::RevokeInitialAccessToken { id: "iat-2".into() })
            .await
            .unwrap()
    );
    assert!(
        !change(Change::RevokeInitialAccessToken { id: "iat-2".into() })
            .await
            .unwrap()
    );
}

/// Every change above appended one entry, changes that did nothing appended
/// none, and the chain verifies.
async fn audit_chain(store: &dyn Store) {
    store
        .append_audit(ev("client.register.refused"))
        .await
        .unwrap();
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    crate::audit::verify_chain(&entries, crate::audit::GENESIS, 0).expect("the chain verifies");
    let actions: Vec<String> = entries.iter().map(|e| e.event().unwrap().action).collect();
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(
        count("bootstrap"),
        1,
        "the no-op second bootstrap appends nothing"
    );
    assert_eq!(
        count("client.update"),
        1,
        "the stale-RAT update appends nothing"
    );
    assert_eq!(count("client.delete"), 1, "failed deletes append nothing");
    assert_eq!(count("client.register.refused"), 1);
    // Failed, exhausted and over-quota inserts append nothing:
    // 1 + 64 + 1 + 5 + 1 + 4 + 1 + 1 stored clients.
    assert_eq!(count("client.register"), 78, "{actions:?}");
    // Changes that applied: approve, lapse, re-approve, expire, suspend, offboard, revoke.
    assert_eq!(count("lifecycle"), 7, "{actions:?}");
    let page = store.audit_entries(entries[9].seq, 5).await.unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(page[0].seq, entries[10].seq);
}

async fn bootstrap_once(store: &dyn Store) {
    let records = Bootstrap {
        organization: Organization {
            id: "org-default".into(),
            name: "default".into(),
            created_at: 1,
            status: "active".into(),
        },
        admin_token_hash: hash(1),
        initial_access_token: InitialAccessToken {
            expires_at: None,
            ..iat("iat-1", "org-default", 2, None)
        },
    };
    assert!(
        store
            .bootstrap(records.clone(), ev("bootstrap"))
            .await
            .unwrap(),
        "first bootstrap creates"
    );
    let mut again = records;
    again.admin_token_hash = hash(3);
    again.initial_access_token.id = "iat-other".into();
    again.initial_access_token.token_hash = hash(4);
    assert!(
        !store.bootstrap(again, ev("bootstrap")).await.unwrap(),
        "second bootstrap is a no-op"
    );
    assert_eq!(
        store.admin_token(&hash(1)).await.unwrap().map(|t| t.1),
        Some("admin".into())
    );
    assert!(
        store.admin_token(&hash(3)).await.unwrap().is_none(),
        "no partial second bootstrap"
    );
    assert!(store
        .initial_access_token_by_hash(&hash(4))
        .await
        .unwrap()
        .is_none());
    let iat = store
        .initial_access_token_by_hash(&hash(2))
        .await
        .unwrap()
        .expect("bootstrap IAT");
    assert_eq!(iat.organization_id, "org-default");
}

async fn organizations(store: &dyn Store) {
    store.insert_organization(org("o1")).await.unwrap();
    assert_eq!(
        store.organization_by_name("name-o1").await.unwrap(),
        Some(org("o1"))
    );
    assert!(store
        .organization_by_name("missing")
        .await
        .unwrap()
        .is_none());
    let duplicate = store.insert_organization(org("o1")).await;
    assert!(
        matches!(duplicate, Err(Error::Conflict(_))),
        "duplicate org: {duplicate:?}"
    );
}

async fn initial_access_tokens(store: &dyn Store) {
    let token = iat("iat-2", "o1", 20, None);
    store
        .insert_initial_access_token(token.clone(), ev("iat.issue"))
        .await
        .unwrap();
    assert_eq!(
        store.initial_access_token_by_hash(&hash(20)).await.unwrap(),
        Some(token)
    );
    let orphan = iat("iat-3", "nope", 21, None);
    assert!(
        store
            .insert_initial_access_token(orphan, ev("iat.issue"))
            .await
            .is_err(),
        "IAT needs an existing organization"
    );
}

async fn clients(store: &dyn Store) {
    assert_eq!(store.client_count().await.unwrap(), 0);
    let c = client("c1", "o1", 30);
    store
        .insert_client(c.clone(), None, ev("client.register"))
        .await
        .unwrap();
    assert_eq!(store.client_count().await.unwrap(), 1);
    assert_eq!(store.client("c1").await.unwrap(), Some(c.clone()));
    assert!(store.client("c2").await.unwrap().is_none());
    assert!(
        matches!(
            store
                .insert_client(c.clone(), None, ev("client.register"))
                .await,
            Err(Error::Conflict(_))
        ),
        "duplicate client_id"
    );
    assert!(
        store
            .insert_client(client("c-orphan", "nope", 31), None, ev("client.register"))
            .await
            .is_err(),
        "client needs an organization"
    );
    assert!(store.client("c-orphan").await.unwrap().is_none());

    let update = ClientUpdate {
        client_id: "c1".into(),
        expected_registration_token_hash: hash(30),
        metadata: serde_json::json!({"client_name": "renamed"}),
        secret_hash: None,
        secret_expires_at: None,
        registration_token_hash: hash(32),
        updated_at: 1_700_000_100,
        policy_version: "v2".into(),
    };
    assert!(store
        .update_client(update.clone(), ev("client.update"))
        .await
        .unwrap());
    // The old registration access token no longer matches: a replayed update fails.
    assert!(
        !store
            .update_client(update, ev("client.update"))
            .await
            .unwrap(),
        "stale RAT must not update"
    );
    let stored = store.client("c1").await.unwrap().unwrap();
    assert_eq!(stored.metadata["client_name"], "renamed");
    assert_eq!(stored.secret_hash, None);
    assert_eq!(stored.registration_token_hash, hash(32));
    assert_eq!(stored.issued_at, c.issued_at);
    assert_eq!(stored.policy_version, "v2");
    assert_eq!(stored.profile, "default");

    assert!(
        !store
            .delete_client("c1", &hash(30), ev("client.delete"))
            .await
            .unwrap(),
        "old RAT cannot delete"
    );
    assert!(store
        .delete_client("c1", &hash(32), ev("client.delete"))
        .await
        .unwrap());
    assert!(store.client("c1").await.unwrap().is_none());
    assert!(
        !store
            .delete_client("c1", &hash(32), ev("client.delete"))
            .await
            .unwrap(),
        "second delete finds nothing"
    );
}

async fn concurrent_inserts_are_all_durable(store: &dyn Store) {
    let inserts = (0..64).map(|i| {
        store.insert_client(
            client(&format!("bulk-{i}"), "o1", 40),
            None,
            ev("client.register"),
        )
    });
    let results = join_all(inserts).await;
    assert!(
        results.iter().all(Result::is_ok),
        "concurrent inserts: {results:?}"
    );
    for i in 0..64 {
        assert!(store.client(&format!("bulk-{i}")).await.unwrap().is_some());
    }
    // One failing insert in a batch does not take the others down.
    let mixed = vec![
        store.insert_client(client("bulk-0", "o1", 41), None, ev("client.register")),
        store.insert_client(client("mixed-ok", "o1", 41), None, ev("client.register")),
    ];
    let results = join_all(mixed).await;
    assert!(
        results[0].is_err() && matches!(results[1], Ok(Inserted::Stored)),
        "{results:?}"
    );
}

async fn initial_access_token_uses_are_counted_atomically(store: &dyn Store) {
    store
        .insert_initial_access_token(iat("iat-limited", "o1", 50, Some(5)), ev("iat.issue"))
        .await
        .unwrap();
    let attempts = (0..12).map(|i| {
        let mut c = client(&format!("limited-{i}"), "o1", 51);
        c.initial_access_token_id = Some("iat-limited".into());
        store.insert_client(c, None, ev("client.register"))
    });
    let results = join_all(attempts).await;
    let stored = results
        .iter()
        .filter(|r| matches!(r, Ok(Inserted::Stored)))
        .count();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Ok(Inserted::CredentialExhausted)))
        .count();
    assert_eq!((stored, exhausted), (5, 7), "{results:?}");
    let token = store
        .initial_access_token_by_hash(&hash(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.uses, 5);
    let before = store.organization_client_count("o1").await.unwrap();
    assert!(before >= 5);
    // A pending client is stored with its status.
    let mut pending = client("pending-1", "o1", 52);
    pending.status = ClientStatus::Pending;
    assert_eq!(
        store
            .insert_client(pending, None, ev("client.register"))
            .await
            .unwrap(),
        Inserted::Stored
    );
    assert_eq!(
        store.client("pending-1").await.unwrap().unwrap().status,
        ClientStatus::Pending
    );
    assert_eq!(
        store.organization_client_count("o1").await.unwrap(),
        before + 1
    );
}

/// The organization quota is checked inside the insert's transaction:
/// concurrent registrations never overshoot it, and a refused insert
/// consumes no use of its initial access token.
async fn quota_is_exact_under_concurrency(store: &dyn Store) {
    store.insert_organization(org("o3")).await.unwrap();
    store
        .insert_initial_access_token(iat("iat-o3", "o3", 80, None), ev("iat.issue"))
        .await
        .unwrap();
    let attempts = (0..10).map(|i| {
        let mut c = client(&format!("quota-{i}"), "o3", 81);
        c.initial_access_token_id = Some("iat-o3".into());
        store.insert_client(c, Some(4), ev("client.register"))
    });
    let results = join_all(attempts).await;
    let stored = results
        .iter()
        .filter(|r| matches!(r, Ok(Inserted::Stored)))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Ok(Inserted::QuotaExceeded)))
        .count();
    assert_eq!((stored, refused), (4, 6), "{results:?}");
    assert_eq!(store.organization_client_count("o3").await.unwrap(), 4);
    assert_eq!(
        store
            .initial_access_token_by_hash(&hash(80))
            .await
            .unwrap()
            .unwrap()
            .uses,
        4
    );
}

async fn signing_keys(store: &dyn Store) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let key = |kid: &str, alg: &str| SigningKeyRecord {
        kid: kid.into(),
        alg: alg.into(),
        private_pkcs8: vec![1, 2, 3],
        created_at: 7,
        activates_at: 7,
    };
    let stored = store
        .ensure_signing_keys(vec![key("k1", "ES256"), key("k2", "RS256")])
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    // A second replica racing with its own keys keeps the first set.
    let stored = store
        .ensure_signing_keys(vec![key("k3", "ES256")])
        .await
        .unwrap();
    let mut kids: Vec<_> = stored.iter().map(|k| k.kid.as_str()).collect();
    kids.sort();
    assert_eq!(kids, ["k1", "k2"]);
    assert_eq!(store.signing_keys().await.unwrap().len(), 2);

    // Rotation: one next key per algorithm, however many replicas try.
    let next = |kid: &str| SigningKeyRecord {
        activates_at: 1_000,
        ..key(kid, "ES256")
    };
    assert!(store
        .insert_next_signing_key(next("k4"), 500)
        .await
        .unwrap());
    assert!(
        !store
            .insert_next_signing_key(next("k5"), 500)
            .await
            .unwrap(),
        "a next key is already waiting"
    );
    let racing = join_all((0..4).map(|i| {
        let k = SigningKeyRecord {
            activates_at: 2_000,
            ..key(&format!("race-{i}"), "ES256")
        };
        store.insert_next_signing_key(k, 1_500)
    }))
    .await;
    assert_eq!(racing.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(
        keys.iter().map(|k| k.activates_at).collect::<Vec<_>>(),
        [7, 7, 1_000, 2_000],
        "ordered by activation"
    );
    store.delete_signing_key("k1").await.unwrap();
    assert!(store
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .all(|k| k.kid != "k1"));
}

async fn point_of_use(store: &dyn Store) {
    store.insert_organization(org("pu")).await.unwrap();
    let mut c = client("pu-1", "pu", 90);
    c.issued_at = 1_000;
    c.expires_at = Some(5_000);
    store
        .insert_client(c, None, ev("pu.register"))
        .await
        .unwrap();
    let mut anonymous = client("pu-2", "pu", 91);
    anonymous.initial_access_token_id = None;
    anonymous.issued_at = 1_000;
    anonymous.expires_at = Some(9_000);
    store
        .insert_client(anonymous, None, ev("pu.register"))
        .await
        .unwrap();

    let in_use = store.client_in_use("pu-1").await.unwrap().unwrap();
    assert_eq!(in_use.organization_status, "active");
    assert_eq!(in_use.client.client_id, "pu-1");
    assert_eq!(in_use.client.status, ClientStatus::Active);
    assert!(store.client_in_use("nobody").await.unwrap().is_none());

    // last_used_at never moves backwards.
    store
        .touch_clients(vec![("pu-1".into(), 2_000), ("nobody".into(), 2_000)])
        .await
        .unwrap();
    store
        .touch_clients(vec![("pu-1".into(), 1_500)])
        .await
        .unwrap();
    assert_eq!(
        store.client("pu-1").await.unwrap().unwrap().last_used_at,
        Some(2_000)
    );
    let sorted = |mut ids: Vec<String>| {
        ids.retain(|id| id.starts_with("pu-"));
        ids.sort();
        ids
    };
    assert_eq!(
        sorted(store.clients_unused_since(3_000, 10).await.unwrap()),
        ["pu-1", "pu-2"]
    );
    assert_eq!(
        sorted(store.clients_unused_since(1_800, 10).await.unwrap()),
        ["pu-2"],
        "used since the cutoff"
    );

    // Reports.
    let report = store
        .clients(&ClientQuery {
            organization_id: Some("pu".into()),
            expires_before: Some(6_000),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        report
            .iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        ["pu-1"]
    );
    let anonymous_only = store
        .clients(&ClientQuery {
            organization_id: Some("pu".into()),
            registration_path: Some("anonymous".into()),
            status: Some(ClientStatus::Active),
            unused_since: Some(3_000),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(anonymous_only.len(), 1);
    assert_eq!(anonymous_only[0].client_id, "pu-2");
    let counts: Vec<_> = store
        .client_counts()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.organization_id == "pu")
        .map(|c| (c.registration_path, c.status, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("anonymous".to_owned(), ClientStatus::Active, 1),
            ("iat".to_owned(), ClientStatus::Active, 1)
        ]
    );

    // Secret rotation keeps the old secret for the overlap, once.
    let rotate = |expected: u8| Change::RotateSecret {
        client_id: "pu-1".into(),
        expected_secret_hash: hash(expected),
        secret_hash: hash(77),
        secret_expires_at: 4_000,
        previous_expires_at: 2_500,
    };
    assert!(store.apply_change(rotate(9), ev("secret")).await.unwrap());
    assert!(
        !store.apply_change(rotate(9), ev("secret")).await.unwrap(),
        "a concurrent rotation already replaced that secret"
    );
    let rotated = store.client("pu-1").await.unwrap().unwrap();
    assert_eq!(rotated.secret_hash, Some(hash(77)));
    assert_eq!(rotated.secret_expires_at, Some(4_000));
    assert_eq!(rotated.previous_secret_hash, Some(hash(9)));
    assert_eq!(rotated.previous_secret_expires_at, Some(2_500));

    // Assertion ids are single-use per client.
    assert!(store
        .use_assertion_jti("pu-1", &hash(1), 3_000)
        .await
        .unwrap());
    assert!(!store
        .use_assertion_jti("pu-1", &hash(1), 3_000)
        .await
        .unwrap());
    assert!(store
        .use_assertion_jti("pu-2", &hash(1), 3_000)
        .await
        .unwrap());
    let second = hash(2);
    let replays = join_all((0..8).map(|_| store.use_assertion_jti("pu-1", &second, 3_000))).await;
    assert_eq!(replays.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);

    // Revoked access tokens, until they expire.
    assert!(!store.access_token_revoked("jti-1").await.unwrap());
    let revoke = Change::RevokeAccessToken {
        jti: "jti-1".into(),
        client_id: "pu-1".into(),
        expires_at: 3_000,
    };
    assert!(store
        .apply_change(revoke, ev("token.revoke"))
        .await
        .unwrap());
    assert!(store.access_token_revoked("jti-1").await.unwrap());
    let (client, revoked) = store
        .client_in_use_and_revoked("pu-1", "jti-1")
        .await
        .unwrap();
    assert_eq!(
        (client.map(|c| c.client.client_id), revoked),
        (Some("pu-1".to_owned()), true)
    );
    let (client, revoked) = store
        .client_in_use_and_revoked("pu-1", "jti-2")
        .await
        .unwrap();
    assert_eq!((client.is_some(), revoked), (true, false));
    let (client, revoked) = store
        .client_in_use_and_revoked("nobody", "jti-1")
        .await
        .unwrap();
    assert_eq!((client.is_none(), revoked), (true, true));
    assert_eq!(store.purge_expired(2_000).await.unwrap(), 0);
    assert_eq!(store.purge_expired(3_001).await.unwrap(), 4);
    assert!(!store.access_token_revoked("jti-1").await.unwrap());
    assert!(store
        .use_assertion_jti("pu-1", &hash(1), 9_000)
        .await
        .unwrap());

    // The reaper's steps: expire at end of life, delete after the grace period.
    assert_eq!(
        sorted(store.clients_past_expiry(5_000, 10).await.unwrap()),
        ["pu-1"]
    );
    let expire = Change::ExpireClient {
        client_id: "pu-1".into(),
        now: 5_100,
    };
    assert!(store
        .apply_change(expire.clone(), ev("client.expire"))
        .await
        .unwrap());
    assert!(!store
        .apply_change(expire, ev("client.expire"))
        .await
        .unwrap());
    let expired = store.client("pu-1").await.unwrap().unwrap();
    assert_eq!(
        (expired.status, expired.expires_at),
        (ClientStatus::Expired, Some(5_000)),
        "expires_at never moves later"
    );
    let early = Change::ExpireClient {
        client_id: "pu-2".into(),
        now: 4_000,
    };
    assert!(store
        .apply_change(early, ev("client.expire"))
        .await
        .unwrap());
    assert_eq!(
        store.client("pu-2").await.unwrap().unwrap().expires_at,
        Some(4_000),
        "an early expiry is the time of expiry"
    );
    assert_eq!(
        sorted(store.expired_clients_before(4_500, 10).await.unwrap()),
        ["pu-2"]
    );
    assert!(store
        .apply_change(
            Change::DeleteClient {
                client_id: "pu-2".into()
            },
            ev("reaper.delete")
        )
        .await
        .unwrap());
    assert!(store.client("pu-2").await.unwrap().is_none());
    assert!(
        store
            .apply_change(
                Change::RevokeClient {
                    client_id: "pu-1".into()
                },
                ev("client.revoke")
            )
            .await
            .map(|changed| !changed)
            .unwrap(),
        "an expired client is not revoked again"
    );
}

/// Polls futures concurrently without pulling in the `futures` crate;
/// outputs come in the order of the futures. Also used by the HTTP tests.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let mut done = true;
        for (i, fut) in pending.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => outputs[i] = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}
