//! Interoperability with a browser-based grant: panva's `openid-client`
//! (npm, v6), an independent relying-party library, registers a public
//! native client (RFC 7591), runs the authorization code grant with PKCE
//! S256 (RFC 7636) and DPoP-bound tokens (RFC 9449) through Charter's login
//! and consent forms, calls userinfo with a DPoP proof, refreshes, and
//! finds the rotated-out refresh token refused (RFC 9700 §4.14.2).
//!
//! The client is `tests/node/client.mjs`, run with Node.js; it prints one
//! JSON line that this test checks. Node.js 20+ and npm must be installed
//! (or named by `CHARTER_TEST_NODE` / `CHARTER_TEST_NPM`): without them the
//! test fails rather than skip, since it is the only check of the grant with
//! a client that is not ours. Dependencies are installed with `npm ci` from
//! the committed lockfile when `node_modules` is missing or stale (the
//! helpers are in `node.rs`).

use super::node;
use charter_testkit::{json, Backend, Options, TestServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const USERNAME: &str = "node-user";
const PASSWORD: &str = "correct horse battery staple 7";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// The claims of a JWS compact serialization, unverified: the library has
/// verified the ID token; the access token is only read for `cnf`.
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWS compact serialization");
    serde_json::from_slice(&base64url_decode(payload)).expect("a JSON payload")
}

fn base64url_decode(input: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("{:?} is not base64url", c as char),
        }
    };
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in input.trim_end_matches('=').bytes() {
        buffer = (buffer << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// Runs `client.mjs` against `server` as `USERNAME`; returns its JSON line.
async fn run_client(server: &TestServer) -> Value {
    node::run_script(
        &node_dir(),
        "client.mjs",
        &[
            ("ISSUER", &server.issuer),
            ("IAT", &server.iat),
            ("USERNAME", USERNAME),
            ("PASSWORD", PASSWORD),
        ],
        "the openid-client flow",
        CLIENT_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn openid_client_code_flow_with_dpop() {
    node::check_node(&node::node()).await;
    node::install_dependencies(&node_dir()).await;

    let server = TestServer::start(Backend::Sqlite, Options::default())
        .await
        .expect("a SQLite server always starts");
    let (status, user) = server
        .admin_post(
            "/admin/v1/users",
            json!({"username": USERNAME, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "creating the end user failed: {user}");
    let user_id = user["id"].as_str().expect("the user's id").to_owned();

    let result = run_client(&server).await;
    let context = format!("client.mjs reported: {result}");

    // The user signed in and allowed, and came back with 303 (the form posts
    // must not be replayed to the client, RFC 9700 §4.12).
    assert_eq!(result["pages"], json!(["login", "consent"]), "{context}");
    assert_eq!(result["redirect_status"], 303, "{context}");

    // RFC 9449 §5: DPoP-bound tokens, from the code and from the refresh.
    assert_eq!(result["token_type"], "DPoP", "{context}");
    assert_eq!(result["refreshed_token_type"], "DPoP", "{context}");

    // The library verified the ID token (signature, aud, exp, nonce); the
    // issuer and subject are the ones this server and user have.
    let id_token = &result["id_token_claims"];
    assert_eq!(id_token["iss"], server.issuer.as_str(), "{context}");
    assert_eq!(id_token["sub"], user_id.as_str(), "{context}");
    assert_eq!(result["sub"], user_id.as_str(), "{context}");
    let client_id = result["client_id"].as_str().expect("client_id");
    assert!(
        id_token["aud"] == client_id
            || id_token["aud"]
                .as_array()
                .is_some_and(|aud| aud.iter().any(|a| a == client_id)),
        "OIDC Core §2: aud names the client; {context}"
    );

    // Userinfo with DPoP answers for the same user, before and after the
    // refresh; the bound token is refused as a bearer token (RFC 9449 §7.1).
    assert_eq!(result["userinfo_sub"], user_id.as_str(), "{context}");
    assert_eq!(
        result["refreshed_userinfo_sub"],
        user_id.as_str(),
        "{context}"
    );
    assert_ne!(result["bearer_userinfo_status"], 200, "{context}");

    // RFC 9449 §6: both access tokens carry the thumbprint of the client's
    // DPoP key; RFC 9068 §2.2: their subject is the user.
    let jkt = result["dpop_jkt"].as_str().expect("dpop_jkt");
    for member in ["access_token", "refreshed_access_token"] {
        let claims = jwt_claims(result[member].as_str().expect(member));
        assert_eq!(claims["cnf"]["jkt"], jkt, "{member}: {claims}");
        assert_eq!(claims["sub"], user_id.as_str(), "{member}: {claims}");
        assert_eq!(claims["client_id"], client_id, "{member}: {claims}");
    }

    // The refresh rotated the refresh token, and the old one is refused.
    assert_eq!(result["refreshed"], true, "{context}");
    assert_eq!(result["rotated"], true, "{context}");
    assert_eq!(result["replay_error"], "invalid_grant", "{context}");
    assert_eq!(result["replay_status"], 400, "{context}");

    server.stop().await;
}

#[test]
fn base64url_decodes_without_padding() {
    assert_eq!(base64url_decode("eyJhIjoxfQ"), br#"{"a":1}"#);
    assert_eq!(base64url_decode("-_8"), [0xfb, 0xff]);
}
