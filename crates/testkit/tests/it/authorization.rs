//! The authorization code flow over HTTP: the authorization endpoint, sign-in
//! and consent pages, the code exchange with PKCE, refresh rotation, ID
//! tokens and userinfo. The helpers here are shared with
//! `authorization_failures.rs`, which holds the refusals.

use charter_testkit::browser::{pkce, redirect_params, Browser, Page};
use charter_testkit::{json, on_both_backends, Options, TestServer};
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// The redirect URI of the confidential web clients below.
pub(crate) const WEB: &str = "https://app.example.com/cb";
/// A loopback redirect URI with a port chosen at request time (RFC 8252).
pub(crate) const LOOPBACK: &str = "http://127.0.0.1:61234/cb";
/// A resource the `open` profile allows (RFC 8707).
pub(crate) const API: &str = "https://api.example.com/";

/// Profile `open` (the default) allows one resource; `gated` needs an
/// administrator's approval for every client.
pub(crate) fn options() -> Options {
    Options {
        extra_toml: r#"
[policy]
version = "t-1"
default_profile = "open"

[policy.profiles.open]
resources = ["https://api.example.com/"]

[policy.profiles.gated]
approval = "always"
"#
        .into(),
        ..Default::default()
    }
}

/// Decodes a JWT's payload without verifying it (the test reads claims).
pub(crate) fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON")
}

pub(crate) fn id(client: &Value) -> &str {
    client["client_id"].as_str().expect("client_id")
}

pub(crate) fn secret(client: &Value) -> &str {
    client["client_secret"].as_str().expect("client_secret")
}

pub(crate) fn text<'a>(value: &'a Value, member: &str) -> &'a str {
    value[member]
        .as_str()
        .unwrap_or_else(|| panic!("{member} in {value}"))
}

/// POST /token with `form`, authenticated with HTTP Basic when `basic` is given.
pub(crate) async fn token_as(
    server: &TestServer,
    basic: Option<&Value>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = server.http.post(server.url("/token")).form(form);
    if let Some(client) = basic {
        request = request.basic_auth(id(client), Some(secret(client)));
    }
    let response = request.send().await.expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn token(server: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    token_as(server, None, form).await
}

/// The status and `error` of a token endpoint answer.
pub(crate) fn outcome(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

/// A confidential web client (client_secret_basic) redirecting to [`WEB`].
pub(crate) async fn web_client(server: &TestServer, name: &str) -> Value {
    server
        .register_code_client(json!({
            "redirect_uris": [WEB],
            "application_type": "web",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_name": name,
        }))
        .await
}

/// An authorization request: valid by default (`openid profile`, state
/// `st-1`, a fresh S256 challenge), changed parameter by parameter.
pub(crate) struct Request {
    pub verifier: String,
    pub redirect: String,
    params: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn new(client_id: &str, redirect: &str) -> Self {
        let (verifier, challenge) = pkce();
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid profile"),
            ("state", "st-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        Self {
            verifier,
            redirect: redirect.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// Sets `name` (replacing it, or adding it if absent).
    pub(crate) fn set(mut self, name: &str, value: &str) -> Self {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(param) => param.1 = value.to_owned(),
            None => self.params.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    /// Adds `name` once more, even if it is present.
    pub(crate) fn add(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn without(mut self, name: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self
    }

    pub(crate) fn url(&self, server: &TestServer) -> String {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        server.authorize_url(&params)
    }

    /// The form of a code exchange for `code`, with this request's verifier.
    pub(crate) fn exchange<'a>(&'a self, code: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect),
            ("code_verifier", &self.verifier),
        ]
    }
}

/// Asserts an error page: `status`, HTML saying `says`, no `Location` and
/// no form (neither a redirect nor a sign-in may follow).
pub(crate) fn assert_error_page(page: &Page, status: u16, says: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    assert_eq!(page.location(), None, "an error page never redirects");
    let content_type = page
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("text/html; charset=utf-8"));
    assert!(
        page.body.contains(says),
        "expected {says:?} in {}",
        page.body
    );
    assert!(
        !page.body.contains("<form"),
        "no form on an error page: {}",
        page.body
    );
    assert!(!page.body.contains("type=\"password\""), "{}", page.body);
}

/// Whether `location` is `redirect` with parameters added to its query
/// (RFC 6749 §4.1.2: any query it has is kept).
fn answers_to(location: &str, redirect: &str) -> bool {
    let separator = if redirect.contains('?') { '&' } else { '?' };
    location
        .strip_prefix(redirect)
        .is_some_and(|rest| rest.starts_with(separator))
}

/// Asserts a `303` error response to `redirect` (RFC 6749 §4.1.2.1) with
/// `state` and `iss` (RFC 9207) and no code.
pub(crate) fn assert_error_redirect(
    server: &TestServer,
    page: &Page,
    redirect: &str,
    error: &str,
    state: Option<&str>,
) -> BTreeMap<String, String> {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location().expect("Location");
    assert!(answers_to(location, redirect), "{location}");
    let params = redirect_params(location);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{location}"
    );
    assert_eq!(params.get("state").map(String::as_str), state, "{location}");
    assert_eq!(params.get("iss"), Some(&server.issuer), "{location}");
    assert!(!params.contains_key("code"), "{location}");
    params
}

/// The code of a successful `303` answer, after checking `state` and `iss`.
pub(crate) fn code_of(server: &TestServer, page: &Page, request: &Request) -> String {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location().expect("Location");
    assert!(answers_to(location, &request.redirect), "{location}");
    let params = redirect_params(location);
    assert_eq!(params.get("iss"), Some(&server.issuer), "{location}");
    assert_eq!(
        params.get("state").map(String::as_str),
        Some("st-1"),
        "{location}"
    );
    assert!(!params.contains_key("error"), "{location}");
    params["code"].clone()
}

pub(crate) fn is_login(page: &Page) -> bool {
    page.status == 200
        && page
            .form()
            .is_some_and(|f| f.action.ends_with("/authorize/login"))
}

pub(crate) fn is_consent(page: &Page) -> bool {
    page.status == 200
        && page
            .form()
            .is_some_and(|f| f.action.ends_with("/authorize/consent"))
}

/// Runs `request` in `browser` as `username`, signing in and allowing as
/// asked, and returns the code.
pub(crate) async fn authorize(
    server: &TestServer,
    browser: &mut Browser,
    request: &Request,
    username: &str,
) -> String {
    let mut page = browser.get(&request.url(server)).await;
    if is_login(&page) {
        page = browser.login(&page, username, PASSWORD).await;
    }
    if is_consent(&page) {
        page = browser.consent(&page, "allow").await;
    }
    code_of(server, &page, request)
}

/// The status of GET /userinfo with `access_token` as a bearer token.
pub(crate) async fn userinfo_status(server: &TestServer, access_token: &str) -> u16 {
    server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
        .status()
        .as_u16()
}

/// RFC 7662 introspection by the confidential `client` itself.
pub(crate) async fn active(server: &TestServer, client: &Value, token: &str) -> bool {
    let response = server
        .http
        .post(server.url("/introspect"))
        .basic_auth(id(client), Some(secret(client)))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspection");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    answer["active"] == true
}

async fn code_flow_end_to_end(server: TestServer) -> TestServer {
    let user = server.create_user("alice", PASSWORD).await;
    let client = server.register_code_client(json!({})).await;
    let client_id = client["client_id"].as_str().expect("client_id");
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:61234/cb";
    let mut browser = Browser::new();
    let login = browser
        .get(&server.authorize_url(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid profile"),
            ("state", "s-1"),
            ("nonce", "n-1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("Sign in"), "{}", login.body);
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Test agent"), "{}", consent.body);
    assert!(
        consent.body.contains("loopback"),
        "loopback warning: {}",
        consent.body
    );
    let done = browser.consent(&consent, "allow").await;
    assert_eq!(done.status, 303, "{}", done.body);
    let location = done.location().expect("Location").to_owned();
    assert!(location.starts_with(redirect), "{location}");
    let params = redirect_params(&location);
    assert_eq!(params["state"], "s-1");
    assert_eq!(params["iss"], server.issuer);
    let code = params["code"].clone();

    let (status, tokens) = token(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = claims(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(access["sub"], user.as_str());
    assert_eq!(access["client_id"], client_id);
    let id_token = claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id_token["iss"], server.issuer);
    assert_eq!(id_token["aud"], client_id);
    assert_eq!(id_token["sub"], user.as_str());
    assert_eq!(id_token["nonce"], "n-1");
    assert!(id_token["auth_time"].is_i64());
    assert!(id_token["at_hash"].is_string());

    let info: Value = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("JSON");
    assert_eq!(info["sub"], user.as_str());
    assert_eq!(info["preferred_username"], "alice");

    // Refresh rotates; the old refresh token replayed revokes the grant.
    let first_refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let (status, refreshed) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let second_refresh = refreshed["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(first_refresh, second_refresh);
    let (status, replay) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, after) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", &second_refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, after["error"].as_str()),
        (400, Some("invalid_grant")),
        "the whole grant is revoked"
    );

    // Consent is remembered: a second request goes straight back.
    let (_, challenge) = pkce();
    let again = browser
        .get(&server.authorize_url(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert!(redirect_params(again.location().expect("Location")).contains_key("code"));
    server
}

on_both_backends!(code_flow_end_to_end);

/// The status and body of a refresh by `client` (HTTP Basic when it has a secret).
async fn refresh(
    server: &TestServer,
    client: &Value,
    refresh_token: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    if client.get("client_secret").is_some() {
        token_as(server, Some(client), &form).await
    } else {
        form.push(("client_id", id(client)));
        token(server, &form).await
    }
}

// TOK-10, TOK-11, TOK-12: a code is redeemed once, by its client, in time,
// with the redirect URI of its request.
async fn codes_are_single_use_and_bound(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let a = web_client(&server, "App A").await;
    let b = web_client(&server, "App B").await;
    let mut browser = Browser::new();

    // Reused: refused, and what the first redemption issued is revoked.
    let request = Request::new(id(&a), WEB);
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let (status, tokens) = token_as(&server, Some(&a), &request.exchange(&code)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = text(&tokens, "access_token");
    assert!(active(&server, &a, access).await);
    assert_eq!(userinfo_status(&server, access).await, 200);
    let second = token_as(&server, Some(&a), &request.exchange(&code)).await;
    assert_eq!(outcome(&second), (400, Some("invalid_grant")));
    assert!(
        !active(&server, &a, access).await,
        "the first redemption's token is revoked"
    );
    assert_eq!(userinfo_status(&server, access).await, 401);
    let replayed = refresh(&server, &a, text(&tokens, "refresh_token"), None).await;
    assert_eq!(
        outcome(&replayed),
        (400, Some("invalid_grant")),
        "its refresh token too"
    );

    // Issued to A, redeemed by B (itself authenticated).
    let request = Request::new(id(&a), WEB);
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let stolen = token_as(&server, Some(&b), &request.exchange(&code)).await;
    assert_eq!(outcome(&stolen), (400, Some("invalid_grant")));

    // Codes are short-lived (at most 10 minutes), and an expired one is refused.
    let request = Request::new(id(&a), WEB);
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let long_lived = "UPDATE authorization_codes SET used = used WHERE client_id = $1 AND $2 = $2 AND expires_at > $3";
    let horizon = charter_service::now() + 600;
    assert_eq!(server.execute_sql(long_lived, id(&a), "", horizon).await, 0);
    let expire = "UPDATE authorization_codes SET expires_at = $3 WHERE client_id = $1 AND $2 = $2";
    let past = charter_service::now() - 1;
    assert!(server.execute_sql(expire, id(&a), "", past).await >= 1);
    let expired = token_as(&server, Some(&a), &request.exchange(&code)).await;
    assert_eq!(outcome(&expired), (400, Some("invalid_grant")));

    // RFC 6749 §4.1.3: the request named redirect_uri, so the exchange must
    // repeat it exactly.
    for redirect in [
        None,
        Some("https://app.example.com/other"),
        Some("https://app.example.com/cb/"),
    ] {
        let request = Request::new(id(&a), WEB);
        let code = authorize(&server, &mut browser, &request, "alice").await;
        let mut form = request.exchange(&code);
        form.retain(|(k, _)| *k != "redirect_uri");
        if let Some(redirect) = redirect {
            form.push(("redirect_uri", redirect));
        }
        let answer = token_as(&server, Some(&a), &form).await;
        assert_eq!(
            outcome(&answer),
            (400, Some("invalid_grant")),
            "{redirect:?}"
        );
    }
    server
}

// TOK-19, RFC 6749 §6: refresh tokens stay with their client and their
// grant's scope, need the client's authentication, and end with the user.
async fn refresh_rules(server: TestServer) -> TestServer {
    let user = server.create_user("alice", PASSWORD).await;
    let web = web_client(&server, "Web app").await;
    let public = server.register_code_client(json!({})).await;
    let mut browser = Browser::new();
    let request = Request::new(id(&web), WEB);
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let (status, tokens) = token_as(&server, Some(&web), &request.exchange(&code)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile");
    let refresh_token = text(&tokens, "refresh_token");

    // A confidential client must authenticate to refresh.
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", id(&web)),
        ("refresh_token", refresh_token),
    ];
    assert_eq!(
        outcome(&token(&server, &form).await),
        (401, Some("invalid_client"))
    );
    let impostor = json!({"client_id": id(&web), "client_secret": "not-the-secret"});
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let answer = token_as(&server, Some(&impostor), &form).await;
    assert_eq!(outcome(&answer), (401, Some("invalid_client")));

    // Another client: invalid_grant.
    let answer = refresh(&server, &public, refresh_token, None).await;
    assert_eq!(outcome(&answer), (400, Some("invalid_grant")));

    // Wider than granted (though registered): invalid_scope.
    let answer = refresh(&server, &web, refresh_token, Some("openid profile email")).await;
    assert_eq!(
        outcome(&answer),
        (400, Some("invalid_scope")),
        "{}",
        answer.1
    );

    // Narrower: that scope now, the grant's scope again on the next refresh.
    let (status, narrowed) = refresh(&server, &web, refresh_token, Some("openid")).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "openid");
    assert_eq!(claims(text(&narrowed, "access_token"))["scope"], "openid");
    let (status, full) = refresh(&server, &web, text(&narrowed, "refresh_token"), None).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["scope"], "openid profile");

    // The user disabled: the refresh token is refused and the access token dead.
    let access = text(&full, "access_token");
    assert_eq!(userinfo_status(&server, access).await, 200);
    let (status, body) = server
        .admin_post(&format!("/admin/v1/users/{user}/disable"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = refresh(&server, &web, text(&full, "refresh_token"), None).await;
    assert_eq!(outcome(&answer), (400, Some("invalid_grant")));
    assert_eq!(userinfo_status(&server, access).await, 401);
    assert!(!active(&server, &web, access).await);
    // Their session ended with it, and they cannot sign in again.
    let page = browser.get(&Request::new(id(&web), WEB).url(&server)).await;
    assert!(is_login(&page), "{}", page.body);
    let page = browser.login(&page, "alice", PASSWORD).await;
    assert_eq!(page.status, 400, "{}", page.body);
    server
}

// Consent is remembered per user and client, and revoking it asks again
// and ends what it granted.
async fn consent_remembered_and_revoked(server: TestServer) -> TestServer {
    let user = server.create_user("alice", PASSWORD).await;
    let client = web_client(&server, "Web app").await;
    let mut browser = Browser::new();
    let request = Request::new(id(&client), WEB);
    let page = browser.get(&request.url(&server)).await;
    assert!(is_login(&page), "{}", page.body);
    let page = browser.login(&page, "alice", PASSWORD).await;
    assert!(is_consent(&page), "{}", page.body);
    let page = browser.consent(&page, "allow").await;
    let code = code_of(&server, &page, &request);
    let (status, tokens) = token_as(&server, Some(&client), &request.exchange(&code)).await;
    assert_eq!(status, 200, "{tokens}");

    // Remembered: straight back with a code, no page.
    let again = Request::new(id(&client), WEB).set("scope", "openid");
    let page = browser.get(&again.url(&server)).await;
    let unredeemed = code_of(&server, &page, &again);
    // A scope not consented to yet is asked for.
    let page = browser
        .get(
            &Request::new(id(&client), WEB)
                .set("scope", "openid email")
                .url(&server),
        )
        .await;
    assert!(is_consent(&page), "{}", page.body);
    assert!(page.body.contains("<code>email</code>"), "{}", page.body);

    // Revoked by an administrator.
    let revoked = server
        .http
        .delete(server.url(&format!("/admin/v1/users/{user}/consents/{}", id(&client))))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .expect("revocation");
    assert_eq!(revoked.status(), 204);
    let page = browser
        .get(&Request::new(id(&client), WEB).url(&server))
        .await;
    assert!(is_consent(&page), "asked again: {}", page.body);
    let answer = refresh(&server, &client, text(&tokens, "refresh_token"), None).await;
    assert_eq!(outcome(&answer), (400, Some("invalid_grant")));
    assert!(!active(&server, &client, text(&tokens, "access_token")).await);
    let answer = token_as(&server, Some(&client), &again.exchange(&unredeemed)).await;
    assert_eq!(
        outcome(&answer),
        (400, Some("invalid_grant")),
        "an unredeemed code dies too"
    );
    server
}

// OIDC Core §3.1.2.1 prompt values and the user's refusal (RFC 6749 §4.1.2.1).
async fn consent_denied_and_prompts(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let client = web_client(&server, "Web app").await;
    let request = || Request::new(id(&client), WEB);
    let mut browser = Browser::new();

    // prompt=none without a session.
    let page = browser
        .get(&request().set("prompt", "none").url(&server))
        .await;
    assert_error_redirect(&server, &page, WEB, "login_required", Some("st-1"));

    // Signed in, not consented: prompt=none cannot ask.
    let page = browser.get(&request().url(&server)).await;
    let consent = browser.login(&page, "alice", PASSWORD).await;
    assert!(is_consent(&consent), "{}", consent.body);
    let page = browser
        .get(&request().set("prompt", "none").url(&server))
        .await;
    assert_error_redirect(&server, &page, WEB, "consent_required", Some("st-1"));

    // Denied: access_denied, and nothing remembered.
    let page = browser.consent(&consent, "deny").await;
    assert_error_redirect(&server, &page, WEB, "access_denied", Some("st-1"));
    let page = browser.get(&request().url(&server)).await;
    assert!(is_consent(&page), "{}", page.body);
    let page = browser.consent(&page, "allow").await;
    assert_eq!(page.status, 303, "{}", page.body);

    // prompt=consent asks although consent is remembered.
    let page = browser
        .get(&request().set("prompt", "consent").url(&server))
        .await;
    assert!(is_consent(&page), "{}", page.body);
    // prompt=none now answers at once.
    let silent = request().set("prompt", "none");
    let page = browser.get(&silent.url(&server)).await;
    code_of(&server, &page, &silent);
    // prompt=login asks for the password although the session is valid.
    let fresh = request().set("prompt", "login");
    let page = browser.get(&fresh.url(&server)).await;
    assert!(is_login(&page), "{}", page.body);
    let page = browser.login(&page, "alice", PASSWORD).await;
    code_of(&server, &page, &fresh);
    server
}

// RFC 8707: an allowed resource becomes the access token's audience.
async fn resource_becomes_audience(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let client = web_client(&server, "Web app").await;
    let mut browser = Browser::new();
    let request = Request::new(id(&client), WEB).set("resource", API);
    let page = browser.get(&request.url(&server)).await;
    let page = browser.login(&page, "alice", PASSWORD).await;
    assert!(
        page.body.contains(&format!("<code>{API}</code>")),
        "{}",
        page.body
    );
    let page = browser.consent(&page, "allow").await;
    let code = code_of(&server, &page, &request);
    // TOK-20: the token request may not name a resource not authorized.
    let mut form = request.exchange(&code);
    form.push(("resource", "https://api.example.com/other"));
    let answer = token_as(&server, Some(&client), &form).await;
    assert_eq!(
        outcome(&answer),
        (400, Some("invalid_target")),
        "{}",
        answer.1
    );
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let (status, tokens) = token_as(&server, Some(&client), &request.exchange(&code)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(claims(text(&tokens, "access_token"))["aud"], API);
    let (status, refreshed) = refresh(&server, &client, text(&tokens, "refresh_token"), None).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(claims(text(&refreshed, "access_token"))["aud"], API);
    server
}

// DISC-12, DISC-15 and what the code flow adds to both metadata documents.
async fn discovery_advertises_the_code_flow(server: TestServer) -> TestServer {
    let oauth = server
        .get_json(&server.root_url("/.well-known/oauth-authorization-server"))
        .await;
    let oidc = server
        .get_json(&server.url("/.well-known/openid-configuration"))
        .await;
    for doc in [&oauth, &oidc] {
        assert_eq!(doc["authorization_endpoint"], server.url("/authorize"));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        let grants = doc["grant_types_supported"]
            .as_array()
            .expect("grant types");
        for grant in ["authorization_code", "refresh_token"] {
            assert!(grants.contains(&json!(grant)), "{grant} in {doc}");
        }
        let dpop = doc["dpop_signing_alg_values_supported"].as_array();
        assert!(dpop.is_some_and(|algs| !algs.is_empty()), "{doc}");
    }
    assert_eq!(oidc["userinfo_endpoint"], server.url("/userinfo"));
    server
}

on_both_backends!(options = super::options();
    codes_are_single_use_and_bound,
    refresh_rules,
    consent_remembered_and_revoked,
    consent_denied_and_prompts,
    resource_becomes_audience,
    discovery_advertises_the_code_flow,
);
