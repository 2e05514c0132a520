//! Signing key rotation seen from outside, as a resource server sees it:
//! the JWK Set at `jwks_uri`, the `kid` of issued access tokens, signature
//! checks by an independent JWT library (`jsonwebtoken`) and introspection.
//!
//! With a 10 s rotation interval the first key A signs; the next key B is
//! published before it signs, and longer before than a JWK Set may be
//! cached, so a verifier that fetched the JWK Set before a token was issued
//! always knows its key; B then signs while A stays published until every
//! token A signed has expired, and A is removed after that. A restart in
//! the middle of the rotation changes neither the keys nor the schedule.

use charter_testkit::{json, on_both_backends, Options, TestServer};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROTATION_INTERVAL_SECS: u64 = 10;
const PUBLISH_AHEAD_SECS: u64 = 5;
const LIFETIME_SECS: i64 = 10;
/// The server keeps a retired key this much longer than its tokens can
/// live, for clock skew (`SKEW_SECS` in `service::keys`, not configurable).
const KEY_RETENTION_SKEW_SECS: i64 = 60;
const POLL: Duration = Duration::from_millis(200);

fn fast_rotation() -> Options {
    Options {
        extra_toml: format!(
            "[tokens]\nkey_rotation_interval = \"{ROTATION_INTERVAL_SECS}s\"\n\
             key_publish_ahead = \"{PUBLISH_AHEAD_SECS}s\"\n\
             access_token_lifetime = \"{LIFETIME_SECS}s\"\n"
        ),
        ..Default::default()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

struct Client {
    id: String,
    secret: String,
}

async fn client(server: &TestServer) -> Client {
    let registered = server
        .register(&json!({"grant_types": ["client_credentials"]}))
        .await;
    Client {
        id: registered["client_id"].as_str().expect("client_id").into(),
        secret: registered["client_secret"]
            .as_str()
            .expect("client_secret")
            .into(),
    }
}

/// The published JWK Set.
struct Keys {
    set: JwkSet,
    /// The kids of the ES256 keys (the default signing_alg), in order.
    es256: Vec<String>,
    /// Every kid, sorted.
    all: Vec<String>,
    /// `Cache-Control: max-age` of the response, in seconds.
    max_age: u64,
}

async fn keys(server: &TestServer) -> Keys {
    let response = server
        .http
        .get(server.url("/jwks"))
        .send()
        .await
        .expect("JWKS request");
    assert_eq!(response.status(), 200);
    let cache_control = response.headers()["cache-control"]
        .to_str()
        .expect("ASCII header")
        .to_owned();
    let max_age = cache_control
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in Cache-Control: {cache_control}"));
    let body: Value = response.json().await.expect("JSON body");
    let set: JwkSet = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("jsonwebtoken rejects the JWKS ({e}): {body}"));
    let kid = |k: &Value| k["kid"].as_str().expect("kid").to_owned();
    let listed = body["keys"].as_array().expect("keys");
    let es256 = listed
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(kid)
        .collect();
    let mut all: Vec<String> = listed.iter().map(kid).collect();
    all.sort();
    Keys {
        set,
        es256,
        all,
        max_age,
    }
}

/// One issued access token, verified against the JWK Set fetched before
/// it was requested.
struct Token {
    jwt: String,
    kid: String,
    exp: i64,
    /// `exp` - `iat`, equal to `expires_in`.
    lifetime: i64,
    at: Instant,
}

/// Verifies `jwt` with the key its `kid` names in `keys`.
fn verify(keys: &Keys, jwt: &str, issuer: &str) -> Result<(String, Value), String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("typ {:?}", header.typ));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = keys
        .set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWK Set {:?}", keys.all))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.leeway = 0;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[issuer]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|e| format!("kid {kid}: {e}"))?
        .claims;
    Ok((kid, claims))
}

/// Gets a token and checks it verifies with the JWK Set `published`,
/// fetched before the request, as a resource server's cached copy would be.
async fn token(server: &TestServer, client: &Client, published: &Keys) -> Token {
    let response = server
        .http
        .post(server.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 200, "token request failed: {body}");
    let jwt = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let (kid, claims) = verify(published, &jwt, &server.issuer).unwrap_or_else(|e| {
        panic!("a token does not verify with the JWK Set published before it was issued: {e}")
    });
    let exp = claims["exp"].as_i64().expect("exp");
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(body["expires_in"].as_i64(), Some(exp - iat), "{body}");
    Token {
        jwt,
        kid,
        exp,
        lifetime: exp - iat,
        at: Instant::now(),
    }
}

/// Notes the time of an event, shown when a test fails.
fn log(started: Instant, event: &str) {
    eprintln!(
        "{:>6.2}s {event} (unix {})",
        started.elapsed().as_secs_f64(),
        unix_now()
    );
}

/// Introspects `token` as its own client; returns `active`.
async fn active(server: &TestServer, client: &Client, token: &Token) -> bool {
    let response = server
        .http
        .post(server.url("/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.jwt.as_str())])
        .send()
        .await
        .expect("introspection request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    body["active"].as_bool().expect("active")
}

// The whole schedule, A → B, with a restart while B waits to sign.
async fn keys_rotate_on_schedule(mut server: TestServer) -> TestServer {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(45);
    let in_time = |what: &str| {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
    };
    let client = client(&server).await;
    let initial = keys(&server).await;
    assert_eq!(initial.es256.len(), 1, "a fresh server has one ES256 key");
    let a = initial.es256[0].clone();
    let first = token(&server, &client, &initial).await;
    assert_eq!(first.kid, a);
    assert_eq!(first.lifetime, LIFETIME_SECS, "the configured lifetime");
    let mut last_a;

    // 1. A signs until its successor B is published.
    let (b, b_published) = loop {
        in_time("the next key to be published");
        let published = keys(&server).await;
        assert!(
            published.es256.contains(&a),
            "A left before B was published"
        );
        let t = token(&server, &client, &published).await;
        assert_eq!(t.kid, a, "A signs until B is published");
        last_a = t;
        if let Some(b) = published.es256.iter().find(|k| **k != a) {
            assert_eq!(published.es256.len(), 2, "{:?}", published.es256);
            log(started, "B published");
            break (b.clone(), Instant::now());
        }
        tokio::time::sleep(POLL).await;
    };

    // 2. A restart while B waits keeps the keys and the schedule.
    let before = keys(&server).await;
    server.restart().await;
    log(started, "restarted");
    let after = keys(&server).await;
    // Every published key survives. The RS256 successor may still have
    // been generating when the server stopped (each key is published as
    // soon as it is stored); the restarted server then stores it.
    assert_eq!(
        after.es256, before.es256,
        "the ES256 keys changed across a restart"
    );
    assert!(
        before.all.iter().all(|k| after.all.contains(k)),
        "a published key vanished across a restart: {:?} -> {:?}",
        before.all,
        after.all
    );
    assert!(
        after.all.len() <= before.all.len() + 1,
        "more than the pending RS256 successor appeared: {:?} -> {:?}",
        before.all,
        after.all
    );
    assert!(
        active(&server, &client, &last_a).await,
        "a token signed before the restart is inactive after it"
    );

    // 3. B signs some time after it was published; A stays published.
    let first_b = loop {
        in_time("the next key to sign");
        let published = keys(&server).await;
        assert_eq!(published.es256, [a.clone(), b.clone()], "A and B published");
        let t = token(&server, &client, &published).await;
        if t.kid == b {
            log(started, "B signs");
            break t;
        }
        assert_eq!(t.kid, a);
        last_a = t;
        tokio::time::sleep(POLL).await;
    };
    // A resource server that cached the JWK Set for as long as it may
    // (Cache-Control max-age) just before B was published still knows B
    // when B signs.
    let lead = first_b.at - b_published;
    let max_age = Duration::from_secs(after.max_age);
    assert!(
        max_age < Duration::from_secs(PUBLISH_AHEAD_SECS),
        "JWKS max-age {max_age:?} is not shorter than key_publish_ahead"
    );
    assert!(
        lead > max_age,
        "B signed {lead:?} after it was first seen in the JWK Set, within the JWKS max-age {max_age:?}"
    );

    // 4. Until the last token A signed expires, A stays published, the
    //    token verifies and introspects active; A never signs again (the
    //    key after B may be published, and may sign, by the end).
    assert!(last_a.exp > unix_now(), "A's last token outlives B's start");
    loop {
        in_time("A's last token to expire");
        if unix_now() > last_a.exp {
            break;
        }
        let published = keys(&server).await;
        assert!(
            published.es256.contains(&a),
            "A was removed while a token it signed is valid until {}",
            last_a.exp
        );
        let verified = verify(&published, &last_a.jwt, &server.issuer);
        let is_active = active(&server, &client, &last_a).await;
        // Only while the token surely had not expired when the server answered.
        if unix_now() < last_a.exp {
            verified.unwrap_or_else(|e| panic!("A's unexpired token: {e}"));
            assert!(is_active, "A's unexpired token introspects inactive");
        }
        let t = token(&server, &client, &published).await;
        assert_ne!(t.kid, a, "A signed again after B started signing");
        tokio::time::sleep(POLL).await;
    }
    log(started, "A's last token expired");
    assert!(
        !active(&server, &client, &last_a).await,
        "an expired token is active"
    );
    let published = keys(&server).await;
    assert!(
        published.es256.contains(&a) && published.es256.contains(&b),
        "A is kept a clock skew longer than its tokens live: {:?}",
        published.es256
    );

    // 5. A is removed once B has signed for longer than any token may live
    //    (a day, whatever the lifetime configured now) plus the skew.
    //    Waiting that long in real time is out of the question, so
    //    the stored schedule is moved that far into the past instead, as
    //    the passing of time would; the server's own refresh removes A.
    let moved = server
        .execute_sql(
            "UPDATE signing_keys SET activates_at = activates_at - $3 WHERE alg = $1 AND $2 = $2",
            "ES256",
            "",
            86_400 + KEY_RETENTION_SKEW_SECS + 5,
        )
        .await;
    assert_eq!(
        moved,
        published.es256.len() as u64,
        "the stored ES256 keys are the published ones"
    );
    loop {
        in_time("A to be removed");
        let published = keys(&server).await;
        let t = token(&server, &client, &published).await;
        assert_ne!(t.kid, a);
        if !published.es256.contains(&a) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    log(started, "A removed");
    assert!(!active(&server, &client, &last_a).await);
    server
}

// A restart with the default schedule: same keys, tokens issued before it
// stay valid, and the same key goes on signing.
async fn restart_keeps_keys_and_tokens(mut server: TestServer) -> TestServer {
    let client = client(&server).await;
    let before = keys(&server).await;
    let issued = token(&server, &client, &before).await;
    assert!(active(&server, &client, &issued).await);

    server.restart().await;

    let after = keys(&server).await;
    assert_eq!(
        after.all, before.all,
        "JWK Set kids changed across a restart"
    );
    verify(&after, &issued.jwt, &server.issuer)
        .unwrap_or_else(|e| panic!("a token from before the restart: {e}"));
    assert!(
        active(&server, &client, &issued).await,
        "a token from before the restart introspects inactive"
    );
    let next = token(&server, &client, &after).await;
    assert_eq!(
        next.kid, issued.kid,
        "the signing key changed across a restart"
    );
    server
}

on_both_backends!(options = super::fast_rotation(); keys_rotate_on_schedule);
on_both_backends!(restart_keeps_keys_and_tokens);
