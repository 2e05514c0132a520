//! Client ID Metadata Documents (CIMD, checklist §6; MCP 2025-11-25+) over
//! HTTP: a `client_id` that is an https URL is fetched from a loopback
//! HTTPS server the test controls (its names resolve to 127.0.0.1 and are
//! allowlisted under `[fetch]`), validated, decided by the domain policy,
//! and kept current: cached per `Cache-Control`, fetched again when stale,
//! removed when the document is gone, replaced when it changed.

use crate::authorization::{
    assert_error_page, code_of, is_consent, is_login, outcome, token_as, userinfo_status, Request,
    PASSWORD,
};
use charter_testkit::browser::{Browser, Page};
use charter_testkit::https::{Document, HttpsServer};
use charter_testkit::{json, on_both_backends, Options, TestServer};
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;

/// The loopback redirect URI every document here registers (any port).
const CALLBACK: &str = "http://127.0.0.1/callback";
/// The same, with the port a native app picked at run time (RFC 8252 §7.3).
const CALLBACK_PORT: &str = "http://127.0.0.1:53682/callback";

fn loopback() -> Vec<IpAddr> {
    vec!["127.0.0.1".parse().unwrap()]
}

/// `client.test` is trusted (profile `open`), `*.client.test` too (profile
/// `gated`: approval first); every other domain gets `unknown`.
fn options_with(unknown: &str) -> Options {
    options_fetching(unknown, true)
}

/// `allowlist`: whether unknown domains' documents may come from the
/// hosts `[fetch]` allows (loopback here).
fn options_fetching(unknown: &str, allowlist: bool) -> Options {
    Options {
        extra_toml: format!(
            r#"
[fetch]
allow_hosts = ["client.test", "apps.client.test", "other.test"]
root_certificates = [{cert:?}]
cache_min_ttl = "0s"

[policy]
version = "cimd-1"
default_profile = "open"

[policy.profiles.open]

[policy.profiles.gated]
approval = "always"

[policy.profiles.narrow]
scopes = ["openid"]
token_endpoint_auth_methods = ["none"]

[client_id_metadata_documents]
enabled = true
unknown_domains = "{unknown}"
unknown_profile = "narrow"
unknown_domains_use_fetch_allowlist = {allowlist}

[[client_id_metadata_documents.domains]]
domain = "client.test"
organization = "default"
profile = "open"

[[client_id_metadata_documents.domains]]
domain = "*.client.test"
organization = "default"
profile = "gated"
"#,
            cert = HttpsServer::CERT
        ),
        resolve: [
            "client.test",
            "apps.client.test",
            "other.test",
            "rebind.test",
        ]
        .into_iter()
        .map(|h| (h.to_owned(), loopback()))
        .collect(),
        ..Default::default()
    }
}

fn options() -> Options {
    options_with("refuse")
}

fn public_options() -> Options {
    options_with("public")
}

fn public_strict_options() -> Options {
    options_fetching("public", false)
}

/// Sources are blocked after 3 failed authentications a minute.
fn strict_limits_options() -> Options {
    let mut options = options();
    options
        .extra_toml
        .push_str("\n[limits]\nfailed_authentications_per_minute_per_source = 3\n");
    options
}

fn pending_options() -> Options {
    options_with("pending")
}

/// A valid document for `client_id`, changed member by member (`null`
/// removes one).
fn document(client_id: &str, overrides: Value) -> Value {
    let mut doc = json!({
        "client_id": client_id,
        "client_name": "Example MCP client",
        "client_uri": "https://client.test/",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile offline_access"
    });
    for (k, v) in overrides.as_object().expect("object") {
        if v.is_null() {
            doc.as_object_mut().unwrap().remove(k);
        } else {
            doc[k] = v.clone();
        }
    }
    doc
}

/// Serves a valid document at `path` on `host` and returns its URL.
fn publish(https: &HttpsServer, host: &str, path: &str, max_age: u32) -> String {
    let url = https.url(host, path);
    https.serve(
        path,
        Document::json(&document(&url, json!({}))).cache_control(&format!("max-age={max_age}")),
    );
    url
}

async fn user(server: &TestServer) -> String {
    let name = format!("cimd-{}", charter_testkit::random());
    server.create_user(&name, PASSWORD).await;
    name
}

/// Starts an authorization request of `client_id` and returns the page.
async fn start(server: &TestServer, browser: &mut Browser, client_id: &str) -> (Request, Page) {
    let request = Request::new(client_id, CALLBACK_PORT).set("scope", "openid");
    let page = browser.get(&request.url(server)).await;
    (request, page)
}

/// Signs in and consents; returns the request and its code.
async fn sign_in(
    server: &TestServer,
    browser: &mut Browser,
    client_id: &str,
    username: &str,
) -> (Request, String, Page) {
    let (request, mut page) = start(server, browser, client_id).await;
    if is_login(&page) {
        page = browser.login(&page, username, PASSWORD).await;
    }
    assert!(is_consent(&page), "expected consent: {}", page.body);
    let consent = page.clone();
    let page = browser.consent(&page, "allow").await;
    let code = code_of(server, &page, &request);
    (request, code, consent)
}

/// Redeems `code` as the public client `client_id`.
async fn redeem(server: &TestServer, client_id: &str, request: &Request, code: &str) -> Value {
    let mut form = request.exchange(code);
    form.push(("client_id", client_id));
    let answer = token_as(server, None, &form).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1
}

async fn refresh(server: &TestServer, client_id: &str, refresh_token: &str) -> (u16, Value) {
    token_as(
        server,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// `client_id` as one path segment of an admin API URL.
fn encoded(client_id: &str) -> String {
    client_id.replace(':', "%3A").replace('/', "%2F")
}

/// The audit actions recorded for `client_id`, in order.
async fn audit_actions(server: &TestServer, client_id: &str) -> Vec<String> {
    server
        .store()
        .audit_entries(0, 10_000)
        .await
        .expect("audit")
        .into_iter()
        .filter_map(|r| {
            let event: Value = serde_json::from_str(&r.event_json).ok()?;
            (event["client_id"] == client_id).then(|| {
                format!(
                    "{}:{}",
                    event["action"].as_str().unwrap_or_default(),
                    event["actor"].as_str().unwrap_or_default()
                )
            })
        })
        .collect()
}

// CIMD-02, -14, -17, MCP-09, MCP-10: a trusted domain's document is
// fetched once, the client signs a user in and gets tokens.
async fn a_trusted_document_client_signs_in(server: TestServer) -> TestServer {
    let metadata = server
        .get_json(&server.root_url("/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/mcp/client.json", 300);
    let username = user(&server).await;
    let mut browser = Browser::new();
    let (request, code, consent) = sign_in(&server, &mut browser, &client_id, &username).await;
    for shown in [
        "Example MCP client",
        "client.test",
        "metadata document",
        "127.0.0.1",
        // MCP "Localhost Redirect URI Risks": every redirect URI is loopback.
        "loopback address",
    ] {
        assert!(consent.body.contains(shown), "{shown}: {}", consent.body);
    }
    let tokens = redeem(&server, &client_id, &request, &code).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");
    let (status, refreshed) = refresh(&server, &client_id, refresh_token).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(https.requests("/mcp/client.json"), 1, "cached per max-age");

    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.profile, "open");
    assert!(stored.initial_access_token_id.is_none());
    assert_eq!(
        audit_actions(&server, &client_id).await[0],
        "client.register:document:client.test"
    );
    // CIMD §6.9: the configuration endpoint knows no token for it.
    let read = server
        .http
        .get(server.url(&format!("/register/{}", encoded(&client_id))))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 401);
    server
}

/// Makes the document served at a URL, given that URL.
type MakeDocument = Box<dyn Fn(&str) -> Document>;

// CIMD-03..07, -13, MCP-09: every refused document is an error page, the
// client is not stored, and nothing is cached (CIMD-10).
async fn refused_documents_are_error_pages(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let mut browser = Browser::new();
    let big = "x".repeat(6000);
    let cases: Vec<(&str, MakeDocument, &str)> = vec![
        (
            "/404.json",
            Box::new(|_| Document::bytes("application/json", "{}").status(404)),
            "status 404",
        ),
        (
            "/500.json",
            Box::new(|_| Document::bytes("application/json", "{}").status(500)),
            "status 500",
        ),
        (
            "/201.json",
            Box::new(|u| Document::json(&document(u, json!({}))).status(201)),
            "status 201",
        ),
        (
            "/redirect.json",
            Box::new(|_| Document::redirect(302, "https://client.test/target.json")),
            "redirect",
        ),
        (
            "/mismatch.json",
            Box::new(|u| Document::json(&document(&format!("{u}/"), json!({})))),
            "is not the URL",
        ),
        (
            "/big.json",
            Box::new(move |u| Document::json(&document(u, json!({"client_name": big.clone()})))),
            "larger than",
        ),
        (
            "/secret.json",
            Box::new(|u| {
                Document::json(&document(
                    u,
                    json!({"token_endpoint_auth_method": "client_secret_basic"}),
                ))
            }),
            "shared secret",
        ),
        (
            "/secret-value.json",
            Box::new(|u| Document::json(&document(u, json!({"client_secret": "s"})))),
            "client_secret",
        ),
        (
            "/no-redirects.json",
            Box::new(|u| Document::json(&document(u, json!({"redirect_uris": null})))),
            "redirect_uris",
        ),
        (
            "/no-name.json",
            Box::new(|u| Document::json(&document(u, json!({"client_name": null})))),
            "client_name",
        ),
        (
            "/html.json",
            Box::new(|u| Document::bytes("text/html", document(u, json!({})).to_string())),
            "content type",
        ),
        (
            "/not-json.json",
            Box::new(|_| Document::bytes("application/json", "{\"client_id\":")),
            "not a JSON object",
        ),
    ];
    for (path, make, says) in &cases {
        let url = https.url("client.test", path);
        https.serve(path, make(&url));
        let (_, page) = start(&server, &mut browser, &url).await;
        assert_error_page(&page, 400, says);
        assert_error_page(&page, 400, "cannot sign you in");
        assert!(
            server.store().client(&url).await.unwrap().is_none(),
            "{path} stored"
        );
    }
    assert_eq!(
        https.requests("/target.json"),
        0,
        "redirects are not followed"
    );

    // Not cached: once the document is fixed, the next request fetches it.
    let url = https.url("client.test", "/500.json");
    let before = https.requests("/500.json");
    https.serve("/500.json", Document::json(&document(&url, json!({}))));
    let (_, page) = start(&server, &mut browser, &url).await;
    assert!(is_login(&page), "{}", page.body);
    assert_eq!(https.requests("/500.json"), before + 1);
    server
}

// CIMD-01, -11: URLs that are not acceptable client ids, and hosts that
// resolve to a special-use address, are refused without any connection.
async fn bad_urls_are_refused_without_fetching(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let port = https.port();
    let good = https.url("client.test", "/c.json");
    https.serve("/c.json", Document::json(&document(&good, json!({}))));
    let mut browser = Browser::new();
    for (client_id, says) in [
        (format!("https://client.test:{port}/"), "path"),
        (format!("https://client.test:{port}"), "path"),
        (format!("https://client.test:{port}/c.json#f"), "fragment"),
        (format!("https://client.test:{port}/c.json?x=1"), "query"),
        (format!("https://client.test:{port}/a/../c.json"), ". or .."),
        (
            format!("https://client.test:{port}/a/%2e%2e/c.json"),
            ". or ..",
        ),
        (
            format!("https://user@client.test:{port}/c.json"),
            "user name",
        ),
        (format!("https://CLIENT.test:{port}/c.json"), "normalized"),
        // Unknown domains are refused by this server's policy.
        (
            format!("https://elsewhere.test:{port}/c.json"),
            "not trusted",
        ),
    ] {
        let (_, page) = start(&server, &mut browser, &client_id).await;
        assert_error_page(&page, 400, says);
    }
    assert_eq!(https.requests("/c.json"), 0, "nothing was fetched");
    // Not https: not a document URL at all, just an unknown client.
    let (_, page) = start(
        &server,
        &mut browser,
        &format!("http://client.test:{port}/c.json"),
    )
    .await;
    assert_error_page(&page, 400, "not registered");
    server
}

// CIMD-11 with unknown domains admitted: a name that resolves to loopback,
// allowlisted under [fetch] or not, and loopback literals are never
// connected to, and the page does not say what the name resolved to.
async fn special_use_addresses_are_never_fetched(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let port = https.port();
    let mut browser = Browser::new();
    for host in [
        "rebind.test",
        "other.test",
        "127.0.0.1",
        "[::1]",
        "localhost",
    ] {
        let client_id = format!("https://{host}:{port}/c.json");
        let (_, page) = start(&server, &mut browser, &client_id).await;
        assert_error_page(&page, 400, "not a public internet address");
        assert!(!page.body.contains("resolves to"), "{}", page.body);
    }
    // Another spelling of 127.0.0.1 is not even a client id.
    let (_, page) = start(
        &server,
        &mut browser,
        &format!("https://2130706433:{port}/c.json"),
    )
    .await;
    assert_error_page(&page, 400, "normalized");
    assert_eq!(https.requests("/c.json"), 0);
    server
}

// CIMD-10: the stored copy is used while fresh, fetched again once stale.
async fn documents_are_cached_then_fetched_again(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/cached.json", 2);
    let username = user(&server).await;
    let mut browser = Browser::new();
    sign_in(&server, &mut browser, &client_id, &username).await;
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert_eq!(page.status, 303, "remembered consent: {}", page.body);
    assert_eq!(https.requests("/cached.json"), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(https.requests("/cached.json"), 2, "stale: fetched again");
    // The same document again: the client, its consent and tokens stay.
    assert_eq!(
        audit_actions(&server, &client_id)
            .await
            .iter()
            .filter(|a| a.starts_with("client."))
            .count(),
        1
    );
    server
}

// A document that disappears takes the client with it at its next use;
// one that comes back is a new client that needs consent again.
async fn a_removed_document_ends_the_client(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/gone.json", 1);
    let username = user(&server).await;
    let mut browser = Browser::new();
    let (request, code, _) = sign_in(&server, &mut browser, &client_id, &username).await;
    let tokens = redeem(&server, &client_id, &request, &code).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo_status(&server, &access_token).await, 200);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Gone for good (404): the client is deleted with its grants.
    https.serve(
        "/gone.json",
        Document::bytes("application/json", "{}").status(404),
    );
    let answer = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(
        outcome(&answer),
        (401, Some("invalid_client")),
        "{}",
        answer.1
    );
    assert!(server.store().client(&client_id).await.unwrap().is_none());
    assert!(audit_actions(&server, &client_id)
        .await
        .contains(&"client.document_removed:system".to_owned()));
    assert_eq!(userinfo_status(&server, &access_token).await, 401);

    // Back again: a new client, so the old refresh token is dead and the
    // user is asked again.
    publish(&https, "client.test", "/gone.json", 300);
    let answer = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(
        outcome(&answer),
        (400, Some("invalid_grant")),
        "{}",
        answer.1
    );
    let (_, code, _) = sign_in(&server, &mut browser, &client_id, &username).await;
    assert!(!code.is_empty());
    // The old access token stays dead under the client's new incarnation.
    assert_eq!(userinfo_status(&server, &access_token).await, 401);
    server
}

// CIMD-16: a changed document is a new incarnation: consents and grants of
// the old one end; an unchanged one keeps them.
async fn a_changed_document_asks_again(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/changing.json", 1);
    let username = user(&server).await;
    let mut browser = Browser::new();
    let (request, code, _) = sign_in(&server, &mut browser, &client_id, &username).await;
    let tokens = redeem(&server, &client_id, &request, &code).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    https.serve(
        "/changing.json",
        Document::json(&document(
            &client_id,
            json!({"redirect_uris": [CALLBACK, "http://127.0.0.1/other"]}),
        ))
        .cache_control("max-age=300"),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert!(is_consent(&page), "consent again: {}", page.body);
    let answer = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(
        outcome(&answer),
        (400, Some("invalid_grant")),
        "{}",
        answer.1
    );
    assert!(audit_actions(&server, &client_id)
        .await
        .contains(&"client.document_changed:document:client.test".to_owned()));
    server
}

// Reaped like other clients: one never used for `unused_client_expiry`
// is expired by the sweep; its document, still served, brings it back as a
// new client that asks the user again.
async fn unused_document_clients_are_reaped(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/idle.json", 300);
    let username = user(&server).await;
    let mut browser = Browser::new();
    sign_in(&server, &mut browser, &client_id, &username).await;
    server.backdate_client(&client_id, 91 * 86_400).await;
    let (status, body) = server
        .admin_post("/admin/v1/lifecycle/sweep", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "expired");
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert!(
        is_consent(&page),
        "a new client, consent again: {}",
        page.body
    );
    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "active");
    // Audited as a registration again: it is a new client.
    let registered = audit_actions(&server, &client_id)
        .await
        .into_iter()
        .filter(|a| a == "client.register:document:client.test")
        .count();
    assert_eq!(registered, 2);
    server
}

// A site that fails transiently (503) is bridged with the stored copy
// (RFC 5861 stale-if-error), and left alone for a while: requests do not
// queue behind its failures.
async fn a_failing_site_is_bridged(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/flaky.json", 1);
    let username = user(&server).await;
    let mut browser = Browser::new();
    let (request, code, _) = sign_in(&server, &mut browser, &client_id, &username).await;
    let tokens = redeem(&server, &client_id, &request, &code).await;
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    https.serve(
        "/flaky.json",
        Document::bytes("application/json", "{}").status(503),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let answer = refresh(&server, &client_id, &refresh_token).await;
        assert_eq!(answer.0, 200, "{}", answer.1);
        refresh_token = answer.1["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        https.requests("/flaky.json"),
        2,
        "one failed fetch, then left alone"
    );
    assert!(server.store().client(&client_id).await.unwrap().is_some());
    server
}

// Conditions outside the document (a suspended organization) refuse the
// client while they last and take nothing away: resumed, the same client
// and its grants work again.
async fn a_suspended_organization_refuses_without_removing(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/org.json", 1);
    let username = user(&server).await;
    let mut browser = Browser::new();
    let (request, code, _) = sign_in(&server, &mut browser, &client_id, &username).await;
    let tokens = redeem(&server, &client_id, &request, &code).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = server
        .admin_post(
            "/admin/v1/organizations/default/suspend",
            json!({"reason": "audit"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(
        outcome(&answer),
        (401, Some("invalid_client")),
        "{}",
        answer.1
    );
    assert!(server.store().client(&client_id).await.unwrap().is_some());
    let (status, body) = server
        .admin_post(
            "/admin/v1/organizations/default/resume",
            json!({"reason": "audit done"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = refresh(&server, &client_id, &refresh_token).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    server
}

// An administrator's revocation stands whatever the document says later.
async fn a_revoked_document_client_stays_revoked(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/revoked.json", 1);
    let mut browser = Browser::new();
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert!(is_login(&page), "{}", page.body);
    let (status, body) = server
        .admin_post(
            &format!("/admin/v1/clients/{}/revoke", encoded(&client_id)),
            json!({"reason": "abuse"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    https.serve(
        "/revoked.json",
        Document::json(&document(&client_id, json!({"client_name": "Renamed"}))),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert_error_page(&page, 403, "revoked");
    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "revoked");
    server
}

// CIMD-15 and MCP-14: a document declaring private_key_jwt makes a
// confidential client: no token without an assertion signed by its key.
async fn a_private_key_jwt_document_must_authenticate(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let key = crate::fetching::ClientKey::new("doc-key");
    let client_id = https.url("client.test", "/service.json");
    https.serve(
        "/service.json",
        Document::json(&document(
            &client_id,
            json!({"token_endpoint_auth_method": "private_key_jwt",
                   "jwks": {"keys": [key.jwk()]},
                   "grant_types": ["authorization_code", "client_credentials"]}),
        ))
        .cache_control("max-age=300"),
    );
    let answer = token_as(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        outcome(&answer),
        (401, Some("invalid_client")),
        "{}",
        answer.1
    );
    let assertion = key.assertion(&client_id, &server.issuer);
    let answer = token_as(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let claims = crate::authorization::claims(answer.1["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(https.requests("/service.json"), 1);
    server
}

// Concurrent first uses of one URL fetch it once.
async fn concurrent_first_uses_fetch_once(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/busy.json", 300);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = Request::new(&client_id, CALLBACK_PORT).url(&server);
        let http = server.http.clone();
        requests.spawn(async move { http.get(url).send().await.expect("authorize").status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("task"), 200);
    }
    assert_eq!(https.requests("/busy.json"), 1);
    server
}

// A source over its failure limit cannot make the server fetch: not
// through client_id, nor through the Basic user or an assertion's sub.
async fn a_blocked_source_makes_the_server_fetch_nothing(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/blocked.json", 300);
    for _ in 0..4 {
        let answer = token_as(
            &server,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "wrong"),
            ],
        )
        .await;
        assert!(matches!(answer.0, 401 | 429), "{}", answer.1);
    }
    let encoded_id = url_encode(&client_id);
    let unsigned = format!(
        "{}.{}.",
        charter_testkit::b64(br#"{"alg":"ES256"}"#),
        charter_testkit::b64(
            json!({"iss": client_id, "sub": client_id})
                .to_string()
                .as_bytes()
        )
    );
    let by_form = token_as(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ],
    )
    .await;
    let by_basic = server
        .http
        .post(server.url("/token"))
        .basic_auth(&encoded_id, Some("x"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let by_assertion = token_as(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &unsigned),
        ],
    )
    .await;
    assert_eq!(by_form.0, 429, "{}", by_form.1);
    assert_eq!(by_basic, 429);
    assert_eq!(by_assertion.0, 429, "{}", by_assertion.1);
    assert_eq!(https.requests("/blocked.json"), 0, "nothing was fetched");
    server
}

/// Form-encodes `text` (RFC 6749 §2.3.1 Basic credentials).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// CIMD-08: the redirect URI must be one the document lists.
async fn redirect_uris_come_from_the_document(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "client.test", "/r.json", 300);
    let mut browser = Browser::new();
    let request = Request::new(&client_id, "http://127.0.0.1/elsewhere");
    let page = browser.get(&request.url(&server)).await;
    assert_error_page(&page, 400, "did not register");
    server
}

// A wildcard domain's profile needs approval: the client waits, pending,
// until an administrator approves it.
async fn a_gated_domain_waits_for_approval(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "apps.client.test", "/app.json", 300);
    let mut browser = Browser::new();
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert_error_page(&page, 403, "approval");
    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "pending");
    assert_eq!(stored.profile, "gated");
    let (status, body) = server
        .admin_post(
            &format!("/admin/v1/clients/{}/approve", encoded(&client_id)),
            json!({"reason": "known partner app"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let username = user(&server).await;
    sign_in(&server, &mut browser, &client_id, &username).await;
    server
}

// Unknown domains under "refuse" (the default choice): nothing is fetched.
async fn unknown_domains_refused(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "other.test", "/o.json", 300);
    let mut browser = Browser::new();
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert_error_page(&page, 400, "not accepted by this server");
    assert_eq!(https.requests("/o.json"), 0);
    server
}

// Unknown domains under "public": admitted as public clients under the
// narrow profile, in the quarantine organization, after consent.
async fn unknown_domains_public(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "other.test", "/o.json", 300);
    let username = user(&server).await;
    let mut browser = Browser::new();
    let (request, code, consent) = sign_in(&server, &mut browser, &client_id, &username).await;
    assert!(consent.body.contains("other.test"), "{}", consent.body);
    redeem(&server, &client_id, &request, &code).await;
    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.profile, "narrow");
    let quarantine = server
        .store()
        .organization_by_name("quarantine")
        .await
        .unwrap()
        .expect("created at start-up");
    assert_eq!(stored.organization_id, quarantine.id);
    // Only the narrow scopes: the document's others were dropped, and
    // asking for them is refused (on a page: nobody vouched for the
    // document's redirect URIs).
    assert_eq!(stored.metadata["scope"], "openid");
    let request = Request::new(&client_id, CALLBACK_PORT).set("scope", "openid profile");
    let page = browser.get(&request.url(&server)).await;
    assert_error_page(&page, 400, "invalid_scope");
    // Confidential clients are not admitted from unknown domains.
    let jwt_client = https.url("other.test", "/jwt.json");
    https.serve(
        "/jwt.json",
        Document::json(&document(
            &jwt_client,
            json!({"token_endpoint_auth_method": "private_key_jwt",
                   "jwks_uri": "https://other.test/jwks.json"}),
        )),
    );
    let (_, page) = start(&server, &mut browser, &jwt_client).await;
    assert_error_page(&page, 400, "public clients only");
    server
}

// Unknown domains under "pending": stored pending approval.
async fn unknown_domains_pending(server: TestServer) -> TestServer {
    let https = HttpsServer::start().await;
    let client_id = publish(&https, "other.test", "/p.json", 300);
    let mut browser = Browser::new();
    let (_, page) = start(&server, &mut browser, &client_id).await;
    assert_error_page(&page, 403, "approval");
    let stored = server.store().client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.status.as_str(), "pending");
    assert_eq!(stored.profile, "narrow");
    server
}

// Off (the default): not advertised, and a URL client_id is refused.
async fn off_by_default(server: TestServer) -> TestServer {
    let metadata = server
        .get_json(&server.root_url("/.well-known/oauth-authorization-server"))
        .await;
    assert!(metadata
        .get("client_id_metadata_document_supported")
        .is_none());
    let mut browser = Browser::new();
    let (_, page) = start(&server, &mut browser, "https://client.test/c.json").await;
    assert_error_page(&page, 400, "does not accept client ID metadata documents");
    // The token endpoint says the same.
    let answer = token_as(
        &server,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "https://client.test/c.json"),
        ],
    )
    .await;
    assert_eq!(outcome(&answer), (401, Some("invalid_client")));
    server
}

on_both_backends!(
    options = super::options();
    a_trusted_document_client_signs_in,
    refused_documents_are_error_pages,
    bad_urls_are_refused_without_fetching,
    documents_are_cached_then_fetched_again,
    a_removed_document_ends_the_client,
    a_changed_document_asks_again,
    redirect_uris_come_from_the_document,
    unused_document_clients_are_reaped,
    a_suspended_organization_refuses_without_removing,
    a_revoked_document_client_stays_revoked,
    a_private_key_jwt_document_must_authenticate,
    a_failing_site_is_bridged,
    concurrent_first_uses_fetch_once,
    a_gated_domain_waits_for_approval,
    unknown_domains_refused,
);

on_both_backends!(
    options = super::public_options();
    unknown_domains_public,
);

on_both_backends!(
    options = super::public_strict_options();
    special_use_addresses_are_never_fetched,
);

on_both_backends!(
    options = super::strict_limits_options();
    a_blocked_source_makes_the_server_fetch_nothing,
);

on_both_backends!(
    options = super::pending_options();
    unknown_domains_pending,
);

on_both_backends!(off_by_default);
