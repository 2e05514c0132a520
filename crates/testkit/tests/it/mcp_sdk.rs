//! The MCP authorization flow end to end, with the official MCP TypeScript
//! SDK (`@modelcontextprotocol/sdk`, npm) on both sides of the resource:
//! the example MCP server of `examples/mcp-server` (Streamable HTTP,
//! RFC 9728 protected resource metadata, RFC 9068 access tokens checked
//! against Charter's JWK Set) and the SDK's client (`tests/mcp/client.mjs`),
//! which on the server's 401 discovers the resource metadata and Charter's
//! RFC 8414 metadata, gets a client ID, and runs the authorization code
//! grant with PKCE and the RFC 8707 resource through Charter's sign-in and
//! consent forms, then lists and calls the tools.
//!
//! Two ways to a client ID:
//! - dynamic registration (RFC 7591) without an initial access token
//!   (`[registration.anonymous]`), as MCP clients do;
//! - a client ID metadata document: the SDK uses the https URL of its
//!   metadata document as `client_id` when Charter's metadata says
//!   `client_id_metadata_document_supported`, and Charter fetches the
//!   document from [`HttpsServer`] as `mcp-client.test`.
//!
//! Then, from here: the example server refuses a request without a token,
//! a token whose audience is not the MCP server, a tampered token, a token
//! without the scope it requires, and a DPoP-bound token sent as a bearer
//! token (RFC 9449 §7.1).
//!
//! Node.js 20+ and npm must be installed (see `node.rs`): without them the
//! tests fail rather than skip. Both npm folders (`examples/mcp-server`,
//! `tests/mcp`) are installed with `npm ci` from their lockfiles when
//! stale. Everything listens on and connects to 127.0.0.1 only.

use super::node;
use charter_testkit::https::{Document, HttpsServer};
use charter_testkit::{b64, json, now, random, Backend, Options, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const USERNAME: &str = "mcp-user";
const PASSWORD: &str = "correct horse battery staple 7";
/// The scope the example server requires (its default `--scope`).
const SCOPE: &str = "mcp:tools";
/// The profile MCP clients are decided under.
const PROFILE: &str = "mcp";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The client ID metadata document's path on [`HttpsServer`].
const DOCUMENT_PATH: &str = "/mcp-client.json";

fn testkit_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn client_dir() -> PathBuf {
    testkit_dir().join("tests/mcp")
}

fn example_dir() -> PathBuf {
    testkit_dir().join("../../examples/mcp-server")
}

/// Node.js checked and both npm folders installed.
async fn prepare_node() {
    node::check_node(&node::node()).await;
    node::install_dependencies(&example_dir()).await;
    node::install_dependencies(&client_dir()).await;
}

/// A free loopback port for the MCP server. Charter must know the MCP
/// server's URL before the MCP server can know Charter's issuer, so the
/// port is chosen first (as `TestServer` chooses its own).
fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

/// Charter's policy for MCP clients, with `extra` TOML after it.
///
/// The MCP server is `http://127.0.0.1:PORT/mcp`: a profile's `resources`
/// patterns must be https, so the loopback resource is allowed as the
/// profile's `default_resource` (which `allows_resource` accepts too); its
/// tokens then have it as their audience with or without `resource`.
fn options(mcp_url: &str, extra: &str) -> Options {
    Options {
        extra_toml: format!(
            r#"
[dpop]
require_nonce = false

[policy]
version = "mcp-sdk-1"
default_profile = "default"

[policy.profiles.default]

# Public MCP clients: the code grant from loopback redirect URIs only, the
# one scope the MCP server needs, tokens for the MCP server.
[policy.profiles.{PROFILE}]
grant_types = ["authorization_code", "refresh_token"]
token_endpoint_auth_methods = ["none"]
scopes = ["{SCOPE}"]
default_scope = "{SCOPE}"
redirect_uris = []
loopback_redirect_uris = true
default_resource = "{mcp_url}"
client_lifetime = "1d"

# Machine clients of the MCP server (client credentials), for the refusals.
[policy.profiles.mcp_machines]
grant_types = ["client_credentials"]
scopes = ["{SCOPE}", "other"]
default_resource = "{mcp_url}"
{extra}"#
        ),
        ..Default::default()
    }
}

/// The example MCP server, a child process killed on drop.
struct McpServer {
    child: Child,
    url: String,
    resource_metadata: String,
    log: Arc<Mutex<String>>,
}

impl McpServer {
    async fn start(port: u16, issuer: &str) -> Self {
        let node = node::node();
        let mut command = Command::new(&node);
        command
            .args([
                "server.mjs",
                "--issuer",
                issuer,
                "--port",
                &port.to_string(),
            ])
            .current_dir(example_dir())
            .env_remove("CHARTER_ISSUER")
            .env_remove("MCP_RESOURCE")
            .env_remove("MCP_REQUIRED_SCOPE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "the example MCP server (node server.mjs) could not start ({e}); {}",
                node::NODE_HINT
            )
        });
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(collect(BufReader::new(stderr), Arc::clone(&log)));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = tokio::time::timeout(STARTUP_TIMEOUT, stdout.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            outcome => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                panic!(
                    "the example MCP server printed no line within {STARTUP_TIMEOUT:?} ({outcome:?}):\n{}",
                    lock(&log)
                );
            }
        };
        // Whatever else it prints goes to the log, so it never blocks.
        tokio::spawn(collect(stdout.into_inner(), Arc::clone(&log)));
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the MCP server's first line is not JSON ({e}): {line}"));
        assert_eq!(started["event"], "listening", "{started}");
        assert_eq!(started["issuer"], issuer, "{started}");
        Self {
            child,
            url: started["url"].as_str().expect("url").to_owned(),
            resource_metadata: started["resource_metadata"]
                .as_str()
                .expect("resource_metadata")
                .to_owned(),
            log,
        }
    }

    fn log(&self) -> String {
        lock(&self.log).clone()
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn collect(reader: impl tokio::io::AsyncBufRead + Unpin, log: Arc<Mutex<String>>) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut log = lock(&log);
        log.push_str(&line);
        log.push('\n');
    }
}

/// Creates the end user; returns its id.
async fn create_user(server: &TestServer) -> String {
    let (status, user) = server
        .admin_post(
            "/admin/v1/users",
            json!({"username": USERNAME, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "creating the end user failed: {user}");
    user["id"].as_str().expect("the user's id").to_owned()
}

/// Runs `client.mjs` against `mcp`; returns its JSON line.
async fn run_client(mcp: &McpServer, mode: &str, metadata_url: Option<&str>) -> Value {
    let mut env = vec![
        ("MCP_URL", mcp.url.as_str()),
        ("USERNAME", USERNAME),
        ("PASSWORD", PASSWORD),
        ("MODE", mode),
    ];
    if let Some(url) = metadata_url {
        env.push(("CLIENT_METADATA_URL", url));
    }
    node::run_script(
        &client_dir(),
        "client.mjs",
        &env,
        &format!("the MCP SDK client ({mode})"),
        CLIENT_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nthe MCP server's log:\n{}", mcp.log()))
}

/// One answer of the MCP server.
struct Answer {
    status: u16,
    challenge: String,
    body: String,
}

/// POSTs an MCP `initialize` to `mcp` with `authorization` (if any).
async fn initialize(
    http: &reqwest::Client,
    mcp: &McpServer,
    authorization: Option<&str>,
) -> Answer {
    let mut request = http
        .post(&mcp.url)
        .timeout(REQUEST_TIMEOUT)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "charter-testkit", "version": "1"}},
        }));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("a request to the MCP server");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("an ASCII challenge").to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap_or_default();
    Answer {
        status,
        challenge,
        body,
    }
}

/// The `error` auth-param of a Bearer challenge, if any.
fn challenge_error(challenge: &str) -> Option<&str> {
    let start = challenge
        .find(" error=\"")
        .or_else(|| challenge.find(",error=\""))?
        + 8;
    let rest = &challenge[start..];
    Some(&rest[..rest.find('"')?])
}

/// The resource metadata (RFC 9728) the MCP server publishes, checked.
async fn check_resource_metadata(http: &reqwest::Client, mcp: &McpServer, issuer: &str) {
    let mcp_url = url::Url::parse(&mcp.url).expect("the MCP URL");
    assert_eq!(
        mcp.resource_metadata,
        format!(
            "{}/.well-known/oauth-protected-resource{}",
            mcp_url.origin().ascii_serialization(),
            mcp_url.path()
        ),
        "RFC 9728 §3.1: the well-known segment goes between host and path"
    );
    let root = format!(
        "{}/.well-known/oauth-protected-resource",
        mcp_url.origin().ascii_serialization()
    );
    for url in [mcp.resource_metadata.as_str(), root.as_str()] {
        let response = http
            .get(url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("GET the resource metadata");
        assert_eq!(response.status(), 200, "GET {url}");
        let metadata: Value = response.json().await.expect("JSON resource metadata");
        assert_eq!(metadata["resource"], mcp.url, "{url}: {metadata}");
        assert_eq!(
            metadata["authorization_servers"],
            json!([issuer]),
            "the issuer, byte for byte: {metadata}"
        );
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
        assert_eq!(metadata["scopes_supported"], json!([SCOPE]));
    }
}

/// What every successful run of the client shows, whatever its client ID.
fn check_flow(result: &Value, mcp: &McpServer, issuer: &str, user_id: &str) {
    let context = format!("client.mjs reported: {result}");
    let client_id = result["client_id"].as_str().expect("client_id");

    // The SDK found Charter through the resource metadata.
    assert_eq!(result["authorization_server"], issuer, "{context}");
    assert_eq!(result["issuer"], issuer, "{context}");
    assert_eq!(
        result["resource_metadata"]["resource"], mcp.url,
        "{context}"
    );

    // The authorization request: PKCE S256, the MCP server as the RFC 8707
    // resource, the scope from the resource metadata, a loopback redirect
    // URI on a port chosen now.
    let request = &result["authorization_request"];
    assert_eq!(request["response_type"], "code", "{context}");
    assert_eq!(request["client_id"], client_id, "{context}");
    assert_eq!(request["code_challenge_method"], "S256", "{context}");
    assert_eq!(request["resource"], mcp.url, "{context}");
    assert_eq!(request["scope"], SCOPE, "{context}");
    let redirect_uri = request["redirect_uri"].as_str().expect("redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{context}"
    );

    // The user signed in and allowed; 303 back (RFC 9700 §4.12) with the
    // issuer (RFC 9207).
    assert_eq!(result["pages"], json!(["login", "consent"]), "{context}");
    assert_eq!(result["redirect_status"], 303, "{context}");
    assert_eq!(result["callback_iss"], issuer, "{context}");

    // The code for a bearer token for the MCP server (RFC 9068 at+jwt).
    let token_requests = result["token_requests"].as_array().expect("token_requests");
    assert_eq!(token_requests.len(), 1, "{context}");
    assert_eq!(token_requests[0]["grant_type"], "authorization_code");
    assert_eq!(token_requests[0]["resource"], mcp.url, "{context}");
    assert_eq!(token_requests[0]["client_id"], client_id, "{context}");
    assert_eq!(result["token_type"], "Bearer", "{context}");
    assert_eq!(result["scope"], SCOPE, "{context}");
    assert_eq!(result["has_refresh_token"], true, "{context}");
    assert_eq!(result["access_token_header"]["typ"], "at+jwt", "{context}");
    let claims = &result["access_token_claims"];
    assert_eq!(claims["aud"], mcp.url, "{context}");
    assert_eq!(claims["iss"], issuer, "{context}");
    assert_eq!(claims["client_id"], client_id, "{context}");
    assert!(claims.get("cnf").is_none(), "{context}");

    // The MCP session with that token: the tools, and what the server saw
    // in the token it verified.
    assert_eq!(result["tools"], json!(["add", "whoami"]), "{context}");
    assert_eq!(result["add"], 42, "{context}");
    assert_eq!(result["add_structured"], json!({"sum": 42}), "{context}");
    let whoami = &result["whoami"];
    assert_eq!(whoami["sub"], user_id, "{context}");
    assert_eq!(whoami["client_id"], client_id, "{context}");
    assert_eq!(whoami["aud"], mcp.url, "{context}");
    assert_eq!(whoami["iss"], issuer, "{context}");
    assert_eq!(whoami["scope"], SCOPE, "{context}");
}

/// The user's consents, as the admin API lists them.
async fn consents(server: &TestServer, user_id: &str) -> Value {
    server
        .admin_get(&format!("/admin/v1/users/{user_id}/consents"))
        .await
}

/// A client credentials token for a new confidential client registered
/// under `profile` (with an initial access token for it), with `scope`,
/// and with `dpop` a proof of that key.
async fn machine_token(
    server: &TestServer,
    profile: &str,
    scope: &str,
    dpop: Option<&DpopKey>,
) -> Value {
    let iat = server.mint_iat(&json!({"profile": profile})).await;
    let response = server
        .register_with(
            Some(&iat),
            &json!({"grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "scope": scope, "client_name": "MCP machine"}),
        )
        .await;
    assert_eq!(response.status(), 201, "registering under {profile}");
    let client: Value = response.json().await.expect("JSON");
    let mut request = server
        .http
        .post(server.url("/token"))
        .basic_auth(
            client["client_id"].as_str().expect("client_id"),
            client["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", scope)]);
    if let Some(key) = dpop {
        request = request.header("DPoP", key.proof("POST", &server.url("/token")));
    }
    let response = request.send().await.expect("token request");
    assert_eq!(response.status(), 200, "a token under {profile}");
    response.json().await.expect("JSON")
}

/// An ES256 key for DPoP proofs (RFC 9449 §4.2), made with `p256`.
struct DpopKey(SigningKey);

impl DpopKey {
    fn new() -> Self {
        let seed = Sha256::digest(format!("{}{}", random(), random()).as_bytes());
        Self(SigningKey::from_slice(&seed).expect("P-256 scalar"))
    }

    fn proof(&self, htm: &str, htu: &str) -> String {
        let point = self.0.verifying_key().to_encoded_point(false);
        let jwk = json!({"kty": "EC", "crv": "P-256",
                         "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))});
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = json!({"jti": random(), "htm": htm, "htu": htu, "iat": now()});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }
}

/// What the example server must refuse, and the token it must take.
async fn check_refusals(server: &TestServer, mcp: &McpServer, access_token: &str) {
    let http = &server.http;
    let log = || mcp.log();

    // No token: 401 with the resource metadata, no error (RFC 6750 §3.1).
    let answer = initialize(http, mcp, None).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        answer.challenge.starts_with("Bearer ")
            && answer
                .challenge
                .contains(&format!("resource_metadata=\"{}\"", mcp.resource_metadata))
            && answer.challenge.contains(&format!("scope=\"{SCOPE}\"")),
        "{}",
        answer.challenge
    );
    assert_eq!(
        challenge_error(&answer.challenge),
        None,
        "{}",
        answer.challenge
    );

    // The SDK client's token is taken as it is.
    let answer = initialize(http, mcp, Some(&format!("Bearer {access_token}"))).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, log());
    assert!(
        answer.body.contains("charter-example-mcp-server"),
        "{}",
        answer.body
    );

    let refused = |answer: Answer, status: u16, error: &str, case: &str| {
        assert_eq!(
            answer.status,
            status,
            "{case}: {} {}\n{}",
            answer.challenge,
            answer.body,
            log()
        );
        assert_eq!(
            challenge_error(&answer.challenge),
            Some(error),
            "{case}: {}",
            answer.challenge
        );
        assert!(
            answer
                .challenge
                .contains(&format!("resource_metadata=\"{}\"", mcp.resource_metadata)),
            "{case}: {}",
            answer.challenge
        );
    };

    // The same token with the first signature character changed (not the
    // last: some of its bits are padding that decoders may ignore).
    let signature_start = access_token.rfind('.').expect("a JWS") + 1;
    let first = &access_token[signature_start..=signature_start];
    let tampered = format!(
        "{}{}{}",
        &access_token[..signature_start],
        if first == "A" { "B" } else { "A" },
        &access_token[signature_start + 1..]
    );
    refused(
        initialize(http, mcp, Some(&format!("Bearer {tampered}"))).await,
        401,
        "invalid_token",
        "a tampered token",
    );

    // A token of another profile, whose audience is Charter itself.
    let other = machine_token(server, "default", "read", None).await;
    let other_token = other["access_token"].as_str().expect("access_token");
    let answer = initialize(http, mcp, Some(&format!("Bearer {other_token}"))).await;
    assert!(answer.challenge.contains("aud"), "{}", answer.challenge);
    refused(answer, 401, "invalid_token", "a token for the issuer");

    // A token for the MCP server from a machine client: taken with the
    // scope, refused without it (RFC 6750 §3.1 insufficient_scope, 403).
    let machine = machine_token(server, "mcp_machines", SCOPE, None).await;
    let machine_token_text = machine["access_token"].as_str().expect("access_token");
    let answer = initialize(http, mcp, Some(&format!("Bearer {machine_token_text}"))).await;
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, log());
    let unscoped = machine_token(server, "mcp_machines", "other", None).await;
    refused(
        initialize(
            http,
            mcp,
            Some(&format!(
                "Bearer {}",
                unscoped["access_token"].as_str().expect("access_token")
            )),
        )
        .await,
        403,
        "insufficient_scope",
        "a token without the scope",
    );

    // A DPoP-bound token for the MCP server, as a bearer token and with the
    // DPoP scheme: the example verifies no proofs, so it takes neither.
    let bound = machine_token(server, "mcp_machines", SCOPE, Some(&DpopKey::new())).await;
    assert_eq!(bound["token_type"], "DPoP", "{bound}");
    let bound_token = bound["access_token"].as_str().expect("access_token");
    refused(
        initialize(http, mcp, Some(&format!("Bearer {bound_token}"))).await,
        401,
        "invalid_token",
        "RFC 9449 §7.1: a DPoP-bound token as a bearer token",
    );
    refused(
        initialize(http, mcp, Some(&format!("DPoP {bound_token}"))).await,
        401,
        "invalid_token",
        "the DPoP scheme",
    );
}

#[tokio::test]
async fn mcp_sdk_client_with_dynamic_registration() {
    prepare_node().await;
    let port = free_port();
    let mcp_url = format!("http://127.0.0.1:{port}/mcp");
    // MCP clients come without an initial access token.
    let extra = format!(
        r#"
[registration.anonymous]
enabled = true
profile = "{PROFILE}"
organization = "quarantine"
"#
    );
    let server = TestServer::start(Backend::Sqlite, options(&mcp_url, &extra))
        .await
        .expect("a SQLite server always starts");
    let user_id = create_user(&server).await;
    let mcp = McpServer::start(port, &server.issuer).await;
    assert_eq!(
        mcp.url, mcp_url,
        "the MCP server listens where Charter expects"
    );
    check_resource_metadata(&server.http, &mcp, &server.issuer).await;

    let result = run_client(&mcp, "dcr", None).await;
    let context = format!("client.mjs reported: {result}");
    check_flow(&result, &mcp, &server.issuer, &user_id);

    // RFC 7591: the SDK registered once, a public client with the loopback
    // redirect URI and the scope of the resource metadata; the client ID is
    // one Charter issued, in the quarantine organization, under the profile.
    let registrations = result["registration_requests"]
        .as_array()
        .expect("registration_requests");
    assert_eq!(registrations.len(), 1, "{context}");
    assert_eq!(registrations[0]["token_endpoint_auth_method"], "none");
    assert_eq!(registrations[0]["scope"], SCOPE, "{context}");
    assert_eq!(
        registrations[0]["redirect_uris"],
        json!(["http://127.0.0.1/callback"]),
        "{context}"
    );
    let client_id = result["client_id"].as_str().expect("client_id");
    assert!(!client_id.contains(':'), "not a URL: {context}");
    let record = server
        .store()
        .client(client_id)
        .await
        .expect("the store answers")
        .unwrap_or_else(|| panic!("Charter has no client {client_id}"));
    assert_eq!(record.profile, PROFILE);
    let quarantine = server
        .store()
        .organization_by_name("quarantine")
        .await
        .expect("the store answers")
        .expect("the quarantine organization");
    assert_eq!(record.organization_id, quarantine.id);

    // The user's consent is to that client, for the MCP server.
    let consents = consents(&server, &user_id).await;
    assert_eq!(
        consents["consents"][0]["client_id"], client_id,
        "{consents}"
    );
    assert_eq!(
        consents["consents"][0]["resources"],
        json!([mcp_url]),
        "{consents}"
    );

    let access_token = result["access_token"].as_str().expect("access_token");
    check_refusals(&server, &mcp, access_token).await;

    mcp.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn mcp_sdk_client_with_a_client_id_metadata_document() {
    prepare_node().await;
    let documents = HttpsServer::start().await;
    let document_url = documents.url("mcp-client.test", DOCUMENT_PATH);
    documents.serve(
        DOCUMENT_PATH,
        Document::json(&json!({
            "client_id": document_url,
            "client_name": "MCP SDK test client (metadata document)",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": SCOPE,
        })),
    );
    let port = free_port();
    let mcp_url = format!("http://127.0.0.1:{port}/mcp");
    // No anonymous registration: the document is the only way in.
    let extra = format!(
        r#"
[fetch]
root_certificates = [{cert:?}]
allow_hosts = ["mcp-client.test"]

[client_id_metadata_documents]
enabled = true
unknown_domains = "refuse"

[[client_id_metadata_documents.domains]]
domain = "mcp-client.test"
organization = "default"
profile = "{PROFILE}"
"#,
        cert = HttpsServer::CERT
    );
    let mut options = options(&mcp_url, &extra);
    options.resolve = vec![(
        "mcp-client.test".into(),
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
    )];
    let server = TestServer::start(Backend::Sqlite, options)
        .await
        .expect("a SQLite server always starts");
    let user_id = create_user(&server).await;
    let mcp = McpServer::start(port, &server.issuer).await;
    assert_eq!(
        mcp.url, mcp_url,
        "the MCP server listens where Charter expects"
    );

    let result = run_client(&mcp, "cimd", Some(&document_url)).await;
    let context = format!("client.mjs reported: {result}");
    check_flow(&result, &mcp, &server.issuer, &user_id);

    // The SDK used the document's URL as its client ID, registered nothing,
    // and Charter fetched the document.
    assert_eq!(
        result["client_id_metadata_document_supported"], true,
        "{context}"
    );
    assert_eq!(result["client_id"], document_url, "{context}");
    assert_eq!(result["registration_requests"], json!([]), "{context}");
    assert_eq!(result["whoami"]["client_id"], document_url, "{context}");
    assert!(
        documents.requests(DOCUMENT_PATH) >= 1,
        "Charter never fetched {document_url}"
    );
    let consents = consents(&server, &user_id).await;
    assert_eq!(
        consents["consents"][0]["client_id"], document_url,
        "{consents}"
    );

    mcp.stop().await;
    server.stop().await;
    documents.stop().await;
}
