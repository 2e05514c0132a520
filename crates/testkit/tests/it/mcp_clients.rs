//! What widely used MCP clients actually send, replayed over HTTP: RFC 7591
//! registration bodies and Client ID Metadata Documents (replayed as
//! registration bodies, since documents go through the same validation).
//! Each body names its source; docs/mcp-clients.md has the table and the
//! reasons for every decision asserted here.
//!
//! "verbatim" means copied from the client's source or from a document
//! fetched and quoted in an issue; "reconstructed" means the members an
//! issue reports, with representative values where the client fills one in
//! at run time (a port, a name).

use charter_testkit::{json, on_both_backends, Options, TestServer};
use serde_json::Value;

const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

// ── The bodies ──────────────────────────────────────────────────────────

/// microsoft/vscode src/vs/base/common/oauth.ts, `fetchDynamicRegistration`
/// (verbatim). `grant_types` is VS Code's list filtered by the server's
/// `grant_types_supported`: against Charter (which publishes it) the device
/// grant is filtered out; against a server that omits it, it is sent.
fn vscode_dcr(with_device_grant: bool) -> Value {
    let mut grants = vec!["authorization_code", "refresh_token"];
    if with_device_grant {
        grants.push(DEVICE_CODE);
    }
    json!({
        "client_name": "Visual Studio Code",
        "client_uri": "https://code.visualstudio.com",
        "grant_types": grants,
        "response_types": ["code"],
        "redirect_uris": [
            "https://insiders.vscode.dev/redirect",
            "https://vscode.dev/redirect",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/"
        ],
        "token_endpoint_auth_method": "none",
        "application_type": "native"
    })
}

/// VS Code's document at https://vscode.dev/oauth/client-metadata.json, as
/// quoted in stacklok/toolhive#6290 (VS Code 1.133) (verbatim).
fn vscode_cimd() -> Value {
    json!({
        "client_name": "Visual Studio Code",
        "logo_uri": "https://code.visualstudio.com/assets/branding/code-stable.png",
        "grant_types": ["authorization_code", "refresh_token", DEVICE_CODE],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "client_id": "https://vscode.dev/oauth/client-metadata.json",
        "client_uri": "https://vscode.dev/product",
        "redirect_uris": ["http://127.0.0.1:33418/", "https://vscode.dev/redirect"]
    })
}

/// claude.ai / Claude Desktop's document at
/// https://claude.ai/oauth/mcp-oauth-client-metadata, with the JWT bearer
/// grant it added in June 2026 (Altinity/altinity-mcp#147,
/// better-auth/better-auth#10900, anthropics/claude-ai-mcp#487) (verbatim).
fn claude_ai_cimd() -> Value {
    json!({
        "client_id": "https://claude.ai/oauth/mcp-oauth-client-metadata",
        "client_name": "Claude",
        "client_uri": "https://claude.ai",
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "grant_types": ["authorization_code", "refresh_token", JWT_BEARER],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// claude.ai's hosted connector registering by DCR with
/// `client_secret_post` (anthropics/claude-ai-mcp#1043) (reconstructed).
fn claude_ai_dcr() -> Value {
    json!({
        "client_name": "Claude",
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post"
    })
}

/// Claude Code's document at
/// https://claude.ai/oauth/claude-code-client-metadata: port-less loopback
/// URIs, no `application_type` (anthropics/claude-code#42301, #44378)
/// (verbatim).
fn claude_code_cimd() -> Value {
    json!({
        "client_id": "https://claude.ai/oauth/claude-code-client-metadata",
        "client_name": "Claude Code",
        "client_uri": "https://claude.ai",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// Claude Code by DCR: the members appstrate/appstrate#1267 lists, no
/// `scope`, an ephemeral loopback port (reconstructed).
fn claude_code_dcr() -> Value {
    json!({
        "client_name": "Claude Code",
        "redirect_uris": ["http://localhost:55611/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// Cursor 3.x: three redirect URIs in one request, one a private-use scheme
/// without a dot (mcpmux/mcp-mux#152, erp-mafia/accounted#2225,
/// soflyy/agent-connector-for-wp#111), public, no `application_type`
/// (better-auth/better-auth#10956) (reconstructed).
fn cursor_dcr() -> Value {
    json!({
        "client_name": "Cursor",
        "redirect_uris": [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback"
        ],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// modelcontextprotocol/inspector client/src/lib/auth.ts `clientMetadata`
/// (verbatim, default origin): `scope` is "" when none is configured.
fn inspector_dcr() -> Value {
    json!({
        "redirect_uris": [
            "http://localhost:6274/oauth/callback",
            "http://localhost:6274/oauth/callback/debug"
        ],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "MCP Inspector",
        "client_uri": "https://github.com/modelcontextprotocol/inspector",
        "scope": ""
    })
}

/// A later MCP Inspector, as logged in spring-projects/spring-security#19765
/// (verbatim).
fn inspector_native_dcr() -> Value {
    json!({
        "redirect_uris": ["http://127.0.0.1:6274/oauth/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "client_name": "MCP Inspector",
        "client_uri": "https://github.com/modelcontextprotocol/inspector",
        "scope": "",
        "application_type": "native"
    })
}

/// modelcontextprotocol/typescript-sdk examples/client/src/simpleOAuthClient.ts
/// (verbatim): a CLI on loopback asking for a shared secret.
fn typescript_sdk_example() -> Value {
    json!({
        "client_name": "Simple OAuth MCP Client",
        "redirect_uris": ["http://localhost:8090/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post"
    })
}

/// modelcontextprotocol/python-sdk examples/clients/simple-auth-client
/// (verbatim; the SDK posts `model_dump(exclude_none=True)`).
fn python_sdk_example() -> Value {
    json!({
        "client_name": "Simple Auth Client",
        "redirect_uris": ["http://localhost:3030/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post"
    })
}

/// zed-industries/zed crates/context_server/src/oauth.rs
/// `dcr_registration_body` (verbatim; the grants intersected with Charter's
/// `grant_types_supported`, no scope advertised).
fn zed_dcr() -> Value {
    json!({
        "client_name": "Zed",
        "redirect_uris": ["http://127.0.0.1:49152/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

/// Zed's document at https://zed.dev/oauth/client-metadata.json (the URL is
/// `CIMD_URL` in the file above; contents as quoted by a third-party test
/// suite, fetched 2026-09-21): the logo on another host.
fn zed_cimd() -> Value {
    json!({
        "client_id": "https://zed.dev/oauth/client-metadata.json",
        "client_name": "Zed",
        "client_uri": "https://zed.dev",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://cdn.zed.dev/images/logo-dark.png"
    })
}

/// Codex CLI (openai/codex codex-rs/rmcp-client/src/perform_oauth_login.rs,
/// client name "Codex") through rmcp's `register_client`
/// (modelcontextprotocol/rust-sdk crates/rmcp/src/transport/auth.rs)
/// (verbatim shape; port and callback id representative).
fn codex_dcr() -> Value {
    json!({
        "client_name": "Codex",
        "redirect_uris": ["http://127.0.0.1:51234/callback/x4Rk0hO2bFZ1"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "response_types": ["code"]
    })
}

/// goose's document (same third-party copy as Zed's): an extra member
/// (`code_challenge_methods_supported`) and an IPv6 loopback URI.
fn goose_cimd() -> Value {
    json!({
        "client_id": "https://goose-docs.ai/oauth/client-metadata.json",
        "client_name": "goose",
        "logo_uri": "https://goose-docs.ai/img/logo_light.png",
        "redirect_uris": ["http://127.0.0.1/oauth_callback", "http://[::1]/oauth_callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "code_challenge_methods_supported": ["S256"]
    })
}

/// opencode's document (anomalyco/opencode#47737, verbatim): native, with
/// the server-metadata member `token_endpoint_auth_methods_supported`.
fn opencode_cimd() -> Value {
    json!({
        "client_id": "https://opencode.ai/oauth/opencode/client.json",
        "client_name": "opencode",
        "client_uri": "https://opencode.ai",
        "logo_uri": "https://opencode.ai/web-app-manifest-512x512.png",
        "application_type": "native",
        "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "token_endpoint_auth_methods_supported": ["none"]
    })
}

/// ChatGPT's document at https://chatgpt.com/oauth/client.json (same
/// third-party copy): confidential, `private_key_jwt` with a `jwks_uri`.
fn chatgpt_cimd() -> Value {
    json!({
        "client_id": "https://chatgpt.com/oauth/client.json",
        "client_uri": "https://chatgpt.com/",
        "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "ChatGPT",
        "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
        "token_endpoint_auth_signing_alg": "RS256",
        "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
    })
}

/// `body` with `changes` merged over it (`null` removes a member).
fn with(body: Value, changes: Value) -> Value {
    let mut body = body;
    let map = body.as_object_mut().expect("object body");
    for (name, value) in changes.as_object().expect("object changes") {
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.clone(), value.clone());
        }
    }
    body
}

// ── Helpers ─────────────────────────────────────────────────────────────

/// Registers `body` (with `token`, or anonymously when it is `None`),
/// expects 201 and the redirect URIs echoed exactly as sent.
async fn admitted(server: &TestServer, token: Option<&str>, body: &Value) -> Value {
    let response = server.register_with(token, body).await;
    let status = response.status();
    let client: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 201, "{body} → {client}");
    assert_eq!(
        client.get("redirect_uris"),
        body.get("redirect_uris"),
        "redirect URIs are never replaced (OIDC DCR §3.2)"
    );
    if let Some(client_id) = body.get("client_id") {
        assert_ne!(
            &client["client_id"], client_id,
            "the server assigns client_id"
        );
    }
    client
}

/// Expects a refusal with `error` whose description holds every fragment,
/// and that nothing was stored. Returns the description.
async fn refused(
    server: &TestServer,
    token: Option<&str>,
    body: &Value,
    error: &str,
    fragments: &[&str],
) -> String {
    let before = server.client_count().await;
    let response = server.register_with(token, body).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON body");
    assert_eq!(status, 400, "{body} → {answer}");
    assert_eq!(answer["error"], error, "{body} → {answer}");
    let description = answer["error_description"].as_str().unwrap().to_owned();
    for fragment in fragments {
        assert!(
            description.contains(fragment),
            "«{description}» lacks «{fragment}»"
        );
    }
    assert_eq!(
        server.client_count().await,
        before,
        "a refusal stored a client"
    );
    description
}

// ── Registration with an initial access token, default profile ─────────

// Clients that register public loopback or https callbacks: admitted as
// sent, defaults echoed.
async fn public_clients_admitted(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    // Loopback without application_type: a web client under decision 7.
    for body in [
        claude_code_dcr(),
        claude_code_cimd(),
        zed_dcr(),
        zed_cimd(),
        codex_dcr(),
    ] {
        let client = admitted(&server, iat, &body).await;
        assert_eq!(client["application_type"], "web", "{body}");
        assert_eq!(client["token_endpoint_auth_method"], "none");
        assert!(client.get("client_secret").is_none());
        assert_eq!(client["grant_types"], body["grant_types"]);
        assert_eq!(client["response_types"], json!(["code"]));
        assert!(client.get("scope").is_none(), "no scope asked, none given");
    }
    // Zed's logo on another host is kept as sent (https, never fetched).
    let zed = admitted(&server, iat, &zed_cimd()).await;
    assert_eq!(zed["logo_uri"], "https://cdn.zed.dev/images/logo-dark.png");
    // Native loopback documents, extra members ignored and not echoed.
    for body in [opencode_cimd(), goose_cimd()] {
        let client = admitted(&server, iat, &body).await;
        for extra in [
            "token_endpoint_auth_methods_supported",
            "code_challenge_methods_supported",
        ] {
            assert!(client.get(extra).is_none(), "{extra} echoed");
        }
    }
    assert_eq!(
        admitted(&server, iat, &opencode_cimd()).await["application_type"],
        "native"
    );
    server
}

// claude.ai's document lists the JWT bearer grant; VS Code's registration
// lists the device grant when the server publishes no grant_types_supported.
// Both are dropped and the registered grant types echoed (RFC 7591 §3.2.1).
async fn unserved_extension_grants_dropped(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    let claude = admitted(&server, iat, &claude_ai_cimd()).await;
    assert_eq!(
        claude["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(claude["token_endpoint_auth_method"], "none");
    // VS Code, if it retries as a web client (see the next case).
    let vscode = admitted(
        &server,
        iat,
        &with(vscode_dcr(true), json!({"application_type": "web"})),
    )
    .await;
    assert_eq!(
        vscode["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    // Alone, the device grant leaves nothing usable: refused.
    refused(
        &server,
        iat,
        &json!({"client_name": "device only", "grant_types": [DEVICE_CODE]}),
        "invalid_client_metadata",
        &["RFC 8628) is not supported by this server"],
    )
    .await;
    // A typo is not a well-known grant: refused, not dropped.
    refused(
        &server,
        iat,
        &with(
            claude_code_dcr(),
            json!({"grant_types": ["authorization_code", "refresh-token"]}),
        ),
        "invalid_client_metadata",
        &["'refresh-token' is not supported"],
    )
    .await;
    server
}

// VS Code registers https redirect URIs as a native client, in DCR and in
// its document: refused (OIDC DCR §2; redirect URIs are never replaced),
// with a description that says what to change.
async fn native_https_redirects_refused(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    for body in [vscode_dcr(false), vscode_dcr(true), vscode_cimd()] {
        let description = refused(
            &server,
            iat,
            &body,
            "invalid_redirect_uri",
            &[
                "'https://vscode.dev/redirect' native clients may register only private-use scheme or http loopback redirect URIs",
                "register the https URIs with application_type 'web'",
            ],
        )
        .await;
        assert!(
            !description.contains("device_code"),
            "the unserved grant is dropped, not reported: {description}"
        );
    }
    // The retry MCP 2026-07-28 suggests: every URI registered verbatim.
    let retried = admitted(
        &server,
        iat,
        &with(vscode_dcr(false), json!({"application_type": "web"})),
    )
    .await;
    assert_eq!(retried["application_type"], "web");
    server
}

// Cursor's private-use scheme has no dot and sits beside an https URI:
// refused as a web client and as a native one, each time naming the URI.
async fn cursor_refused(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    refused(
        &server,
        iat,
        &cursor_dcr(),
        "invalid_redirect_uri",
        &[
            "'cursor://anysphere.cursor-mcp/oauth/callback' web clients must use https redirect URIs",
            "application_type 'native'",
        ],
    )
    .await;
    refused(
        &server,
        iat,
        &with(cursor_dcr(), json!({"application_type": "native"})),
        "invalid_redirect_uri",
        &[
            "private-use scheme 'cursor' must be a reverse domain name",
            "'https://www.cursor.com/agents/mcp/oauth/callback' native clients",
        ],
    )
    .await;
    server
}

// The MCP Inspector sends "scope": "" when none is configured: registered
// with no scope (RFC 7592 §2.2 lets the server ignore empty values).
async fn inspector_empty_scope(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    let web = admitted(&server, iat, &inspector_dcr()).await;
    assert!(web.get("scope").is_none(), "{web}");
    assert_eq!(web["application_type"], "web");
    let native = admitted(&server, iat, &inspector_native_dcr()).await;
    assert!(native.get("scope").is_none(), "{native}");
    assert_eq!(native["application_type"], "native");
    assert_eq!(native["grant_types"], json!(["authorization_code"]));
    // Whitespace is not empty: still malformed.
    refused(
        &server,
        iat,
        &with(inspector_dcr(), json!({"scope": " "})),
        "invalid_client_metadata",
        &["scope:"],
    )
    .await;
    server
}

// SDK examples and claude.ai's connector ask for client_secret_post: with
// an initial access token they get it (an expiring per-instance secret,
// RFC 8252 §8.4), and the method is echoed as asked.
async fn shared_secret_clients(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    for body in [
        typescript_sdk_example(),
        python_sdk_example(),
        claude_ai_dcr(),
    ] {
        let client = admitted(&server, iat, &body).await;
        assert_eq!(client["token_endpoint_auth_method"], "client_secret_post");
        assert!(client["client_secret"].is_string());
        assert!(
            client["client_secret_expires_at"].as_i64().unwrap()
                > client["client_id_issued_at"].as_i64().unwrap()
        );
    }
    // Omitted: RFC 7591 §2's default, client_secret_basic, echoed.
    let defaults = admitted(
        &server,
        iat,
        &json!({"client_name": "Claude", "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}),
    )
    .await;
    assert_eq!(
        defaults["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert!(defaults["client_secret"].is_string());
    assert_eq!(defaults["grant_types"], json!(["authorization_code"]));
    assert_eq!(defaults["response_types"], json!(["code"]));
    server
}

// Members the Python SDK can send and the drafts allow: kept and echoed;
// scopes the server does not know are the operator's to restrict.
async fn software_id_and_scopes(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    let body = with(
        python_sdk_example(),
        json!({"software_id": "simple-auth-client", "software_version": "1.9.4",
               "scope": "mcp:tools openid offline_access", "x_vendor": {"a": 1}}),
    );
    let client = admitted(&server, iat, &body).await;
    assert_eq!(client["software_id"], "simple-auth-client");
    assert_eq!(client["software_version"], "1.9.4");
    assert_eq!(client["scope"], "mcp:tools openid offline_access");
    assert!(client.get("x_vendor").is_none());
    server
}

// Tolerance stops at security: the implicit and password grants, hybrid
// response types and http redirect URIs stay refusals, beside valid values.
async fn security_refusals_stay(server: TestServer) -> TestServer {
    let iat = Some(server.iat.as_str());
    let base = claude_code_dcr();
    for (changes, error, fragment) in [
        (
            json!({"grant_types": ["authorization_code", "implicit"]}),
            "invalid_client_metadata",
            "'implicit' is refused",
        ),
        (
            json!({"grant_types": ["authorization_code", "password"]}),
            "invalid_client_metadata",
            "'password' is refused",
        ),
        (
            json!({"response_types": ["code", "code token"]}),
            "invalid_client_metadata",
            "implicit and hybrid flows are refused",
        ),
        (
            json!({"redirect_uris": ["http://localhost:55611/callback", "http://mcp.example.com/callback"]}),
            "invalid_redirect_uri",
            "http is allowed only for the loopback hosts",
        ),
        (
            json!({"grant_types": ["client_credentials", DEVICE_CODE], "response_types": []}),
            "invalid_client_metadata",
            "client_credentials requires an authenticated client",
        ),
    ] {
        refused(
            &server,
            iat,
            &with(base.clone(), changes),
            error,
            &[fragment],
        )
        .await;
    }
    server
}

on_both_backends!(
    public_clients_admitted,
    unserved_extension_grants_dropped,
    native_https_redirects_refused,
    cursor_refused,
    inspector_empty_scope,
    shared_secret_clients,
    software_id_and_scopes,
    security_refusals_stay,
);

// ── Anonymous registration (open DCR, as MCP clients expect it) ────────

fn anonymous() -> Options {
    Options {
        extra_toml: "[registration.anonymous]\nenabled = true\nprofile = \"default\"\nregistrations_per_minute_per_source = 1000\n".into(),
        ..Default::default()
    }
}

// Without a token, the public clients register as with one; the clients
// that ask for a shared secret are refused by the service's anonymous rule,
// with a description that says what to do.
async fn anonymous_mcp_clients(server: TestServer) -> TestServer {
    for body in [
        claude_code_dcr(),
        claude_ai_cimd(),
        zed_dcr(),
        codex_dcr(),
        inspector_dcr(),
        inspector_native_dcr(),
    ] {
        let client = admitted(&server, None, &body).await;
        assert!(client.get("client_secret").is_none());
        assert!(!client["grant_types"]
            .as_array()
            .unwrap()
            .contains(&json!(JWT_BEARER)));
    }
    for body in [
        typescript_sdk_example(),
        python_sdk_example(),
        claude_ai_dcr(),
    ] {
        refused(
            &server,
            None,
            &body,
            "invalid_client_metadata",
            &["anonymous registration admits only public clients"],
        )
        .await;
    }
    refused(
        &server,
        None,
        &vscode_dcr(false),
        "invalid_redirect_uri",
        &["application_type 'web'"],
    )
    .await;
    server
}

on_both_backends!(options = super::anonymous(); anonymous_mcp_clients);

// ── ChatGPT's confidential document ─────────────────────────────────────

/// chatgpt.com resolves to loopback, which is allowlisted: registration
/// vets jwks_uri without ever reaching an outside address.
fn chatgpt_keys() -> Options {
    Options {
        extra_toml: "[fetch]\nallow_cidrs = [\"127.0.0.0/8\"]\n".into(),
        resolve: vec![(
            "chatgpt.com".into(),
            vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
        )],
        ..Default::default()
    }
}

async fn chatgpt_private_key_jwt(server: TestServer) -> TestServer {
    let client = admitted(&server, Some(&server.iat), &chatgpt_cimd()).await;
    assert_eq!(client["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(client["token_endpoint_auth_signing_alg"], "RS256");
    assert_eq!(client["jwks_uri"], "https://chatgpt.com/oauth/jwks.json");
    assert!(client.get("client_secret").is_none());
    assert!(client
        .get("token_endpoint_auth_methods_supported")
        .is_none());
    server
}

on_both_backends!(options = super::chatgpt_keys(); chatgpt_private_key_jwt);

// ── What an operator's profile refuses ──────────────────────────────────

fn governed() -> Options {
    Options {
        extra_toml: r#"
[policy]
version = "mcp-clients-1"
default_profile = "open"

[policy.profiles.open]

[policy.profiles.hosted_mcp]
grant_types = ["authorization_code", "refresh_token"]
token_endpoint_auth_methods = ["none"]
scopes = ["mcp"]
default_scope = "mcp"
redirect_uris = ["https://claude.ai/api/mcp/auth_callback", "https://chatgpt.com/connector_platform_oauth_redirect"]
loopback_redirect_uris = false

[policy.profiles.identified]
required_fields = ["software_id", "client_uri"]
"#
        .into(),
        ..Default::default()
    }
}

// What validation tolerates, a profile can refuse: loopback callbacks,
// shared secrets, scopes outside a list, anonymous software.
async fn profiles_refuse_what_charter_tolerates(server: TestServer) -> TestServer {
    let hosted = server.mint_iat(&json!({"profile": "hosted_mcp"})).await;
    let hosted = Some(hosted.as_str());
    // claude.ai's document: admitted, the jwt-bearer grant dropped by
    // validation before the profile looks, the profile's scope substituted.
    let claude = admitted(&server, hosted, &claude_ai_cimd()).await;
    assert_eq!(claude["scope"], "mcp");
    assert_eq!(
        claude["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    refused(
        &server,
        hosted,
        &claude_code_dcr(),
        "invalid_redirect_uri",
        &["'http://localhost:55611/callback' is not allowed by profile 'hosted_mcp'"],
    )
    .await;
    refused(
        &server,
        hosted,
        &claude_ai_dcr(),
        "invalid_client_metadata",
        &["'client_secret_post' is not allowed by profile 'hosted_mcp'"],
    )
    .await;
    refused(
        &server,
        hosted,
        &with(claude_ai_cimd(), json!({"scope": "mcp openid"})),
        "invalid_client_metadata",
        &["scope: 'openid' is not allowed by profile 'hosted_mcp'"],
    )
    .await;

    let identified = server.mint_iat(&json!({"profile": "identified"})).await;
    let identified = Some(identified.as_str());
    refused(
        &server,
        identified,
        &python_sdk_example(),
        "invalid_client_metadata",
        &[
            "software_id: required by profile 'identified'",
            "client_uri: required by profile 'identified'",
        ],
    )
    .await;
    admitted(
        &server,
        identified,
        &with(
            python_sdk_example(),
            json!({"software_id": "simple-auth-client", "client_uri": "https://example.com/agent"}),
        ),
    )
    .await;
    server
}

on_both_backends!(options = super::governed(); profiles_refuse_what_charter_tolerates);
