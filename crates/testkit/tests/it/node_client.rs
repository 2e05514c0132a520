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
//! the committed lockfile when `node_modules` is missing or stale.

use charter_testkit::{json, Backend, Options, TestServer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tokio::process::Command;

const USERNAME: &str = "node-user";
const PASSWORD: &str = "correct horse battery staple 7";
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// The program named by `variable`, else `default` on the PATH.
fn program(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// Runs `command` to completion within `limit`, with a message naming
/// `what` when it cannot start or does not finish.
async fn run(mut command: Command, what: &str, hint: &str, limit: Duration) -> Output {
    command.kill_on_drop(true);
    let child = command.output();
    match tokio::time::timeout(limit, child).await {
        Err(_) => panic!("{what} did not finish within {limit:?}"),
        Ok(Err(e)) => panic!("{what} could not start ({e}); {hint}"),
        Ok(Ok(output)) => output,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Node.js 20 or later (openid-client v6 needs its WebCrypto and fetch).
async fn check_node(node: &str) {
    let hint = "install Node.js 20 or later, or set CHARTER_TEST_NODE to its path";
    let mut command = Command::new(node);
    command.arg("--version");
    let output = run(
        command,
        &format!("`{node} --version`"),
        hint,
        CLIENT_TIMEOUT,
    )
    .await;
    let version = text(&output.stdout);
    let major: Option<u32> = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    assert!(
        output.status.success() && major.is_some_and(|m| m >= 20),
        "`{node} --version` says {:?}; {hint}",
        version.trim()
    );
}

/// The version of `package` that `package.json` pins and the one installed.
fn pinned_and_installed(dir: &Path, package: &str) -> (String, Option<String>) {
    let read = |path: PathBuf| -> Option<Value> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    };
    let manifest = read(dir.join("package.json")).expect("tests/node/package.json");
    let pinned = manifest["dependencies"][package]
        .as_str()
        .unwrap_or_else(|| panic!("package.json pins {package}"))
        .to_owned();
    let installed = read(dir.join("node_modules").join(package).join("package.json"))
        .and_then(|m| m["version"].as_str().map(str::to_owned));
    (pinned, installed)
}

/// `npm ci` when the pinned openid-client is not what is installed.
async fn install_dependencies(dir: &Path) {
    let (pinned, installed) = pinned_and_installed(dir, "openid-client");
    if installed.as_deref() == Some(pinned.as_str()) {
        return;
    }
    let npm = program("CHARTER_TEST_NPM", "npm");
    let mut command = Command::new(&npm);
    command
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir);
    let output = run(
        command,
        &format!("`{npm} ci` in {}", dir.display()),
        "install npm (it comes with Node.js), or set CHARTER_TEST_NPM to its path",
        NPM_CI_TIMEOUT,
    )
    .await;
    assert!(
        output.status.success(),
        "`{npm} ci` in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    let (_, installed) = pinned_and_installed(dir, "openid-client");
    assert_eq!(installed, Some(pinned), "npm ci installed openid-client");
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
    let dir = node_dir();
    let node = program("CHARTER_TEST_NODE", "node");
    let mut command = Command::new(&node);
    command
        .arg("client.mjs")
        .current_dir(&dir)
        .env("ISSUER", &server.issuer)
        .env("IAT", &server.iat)
        .env("USERNAME", USERNAME)
        .env("PASSWORD", PASSWORD);
    let output = run(
        command,
        "the openid-client flow (node client.mjs)",
        "install Node.js 20 or later, or set CHARTER_TEST_NODE to its path",
        CLIENT_TIMEOUT,
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "openid-client could not complete the flow ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("client.mjs printed no JSON line ({e}):\n{stdout}\n{stderr}"))
}

#[tokio::test]
async fn openid_client_code_flow_with_dpop() {
    let node = program("CHARTER_TEST_NODE", "node");
    check_node(&node).await;
    install_dependencies(&node_dir()).await;

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
