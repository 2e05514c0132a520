//! Refusals of the authorization code flow over HTTP: PKCE, redirect URI
//! matching, clients that may not be used, forged or replayed forms, and
//! malformed requests. Before the client and its redirect URI are known to
//! be good every refusal is a page; after, a redirect with `state` and `iss`.

use charter_testkit::browser::{pkce, Browser, Page};
use charter_testkit::{join_all, json, on_both_backends, TestServer};
use serde_json::Value;

use crate::authorization::{
    active, assert_error_page, assert_error_redirect, authorize, code_of, id, is_consent, is_login,
    outcome, text, token_as, web_client, Request, LOOPBACK, PASSWORD, WEB,
};

/// A code exchange by the public `client`.
async fn exchange(server: &TestServer, client: &Value, form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    form.push(("client_id", id(client)));
    token_as(server, None, &form).await
}

/// No `Set-Cookie` of the session cookie in `page`.
fn sets_no_session(page: &Page) -> bool {
    page.headers.get_all("set-cookie").iter().all(|v| {
        !v.to_str()
            .unwrap_or_default()
            .starts_with("charter_session=")
    })
}

// TOK-05..TOK-09: PKCE with S256 for every request; no code without a challenge.
async fn pkce_is_required(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let client = server.register_code_client(json!({})).await;
    let request = || Request::new(id(&client), LOOPBACK);
    // Signed in with consent remembered, so that a valid request would get a
    // code at once: only PKCE stands in the way below.
    let mut browser = Browser::new();
    let first = request();
    let code = authorize(&server, &mut browser, &first, "alice").await;
    let (status, body) = exchange(&server, &client, &first.exchange(&code)).await;
    assert_eq!(status, 200, "{body}");

    // TOK-08 (and TOK-07: without a challenge no code exists to downgrade).
    for (broken, error) in [
        (request().without("code_challenge"), "invalid_request"),
        (
            request()
                .without("code_challenge")
                .without("code_challenge_method"),
            "invalid_request",
        ),
        (
            request().set("code_challenge_method", "plain"),
            "invalid_request",
        ),
        (
            request().without("code_challenge_method"),
            "invalid_request",
        ),
        (
            request().set("code_challenge_method", "s256"),
            "invalid_request",
        ),
        (
            request().set("code_challenge", "too-short"),
            "invalid_request",
        ),
    ] {
        let page = browser.get(&broken.url(&server)).await;
        assert_error_redirect(&server, &page, LOOPBACK, error, Some("st-1"));
    }
    // The same without a session: refused before any sign-in.
    let page = Browser::new()
        .get(&request().without("code_challenge").url(&server))
        .await;
    assert_error_redirect(&server, &page, LOOPBACK, "invalid_request", Some("st-1"));

    // TOK-06: the verifier is required (invalid_grant, RFC 9700 §2.1.1),
    // and checked before the code is spent.
    let good = request();
    let code = authorize(&server, &mut browser, &good, "alice").await;
    let mut form = good.exchange(&code);
    form.retain(|(k, _)| *k != "code_verifier");
    let answer = exchange(&server, &client, &form).await;
    assert_eq!(
        outcome(&answer),
        (400, Some("invalid_grant")),
        "{}",
        answer.1
    );
    let (status, body) = exchange(&server, &client, &good.exchange(&code)).await;
    assert_eq!(status, 200, "{body}");

    // TOK-05: a wrong verifier, or the challenge itself (plain), is refused.
    let (other_verifier, _) = pkce();
    let challenge_of = |r: &Request| {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(r.verifier.as_bytes()))
    };
    for wrong in [other_verifier, challenge_of(&good)] {
        let attempt = request();
        let code = authorize(&server, &mut browser, &attempt, "alice").await;
        let mut form = attempt.exchange(&code);
        form.retain(|(k, _)| *k != "code_verifier");
        form.push(("code_verifier", &wrong));
        let answer = exchange(&server, &client, &form).await;
        assert_eq!(
            outcome(&answer),
            (400, Some("invalid_grant")),
            "{}",
            answer.1
        );
    }
    server
}

// TOK-13..TOK-16: exact redirect URI matching, the loopback port excepted;
// an error page, never a redirect, when the client or the URI is not right.
async fn redirect_uri_near_misses(server: TestServer) -> TestServer {
    let web = web_client(&server, "Web app").await;
    let mut browser = Browser::new();
    let page = browser.get(&Request::new(id(&web), WEB).url(&server)).await;
    assert!(is_login(&page), "the registered URI itself: {}", page.body);
    for attacker in [
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://APP.example.com/cb",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb?",
        "https://app.example.com:8443/cb",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb#f",
        "https://app.example.com/c%62",
        "https://app.example.com/x/../cb",
        "http://app.example.com/cb",
        "https://evil.example/cb",
        "https://app.example.com.evil.example/cb",
        "https://app.example.com@evil.example/cb",
    ] {
        let page = browser
            .get(&Request::new(id(&web), attacker).url(&server))
            .await;
        assert_error_page(&page, 400, "Unregistered redirect URI");
        assert!(!page.body.contains(attacker), "{attacker} in {}", page.body);
        assert!(!page.body.contains("href"), "{}", page.body);
        assert!(!page.body.contains("evil.example"), "{}", page.body);
    }

    // A loopback URI takes any port (RFC 8252 §7.3), and nothing else varies.
    let native = server.register_code_client(json!({})).await;
    for good in [
        "http://127.0.0.1/cb",
        "http://127.0.0.1:1024/cb",
        "http://127.0.0.1:65535/cb",
    ] {
        let page = browser
            .get(&Request::new(id(&native), good).url(&server))
            .await;
        assert!(is_login(&page), "{good}: {}", page.body);
    }
    for bad in [
        "http://127.0.0.1:5000/other",
        "http://127.0.0.1:5000/cb/",
        "http://127.0.0.1:5000/cb?x=1",
        "http://127.0.0.2:5000/cb",
        "http://localhost:5000/cb",
        "https://127.0.0.1:5000/cb",
    ] {
        let page = browser
            .get(&Request::new(id(&native), bad).url(&server))
            .await;
        assert_error_page(&page, 400, "Unregistered redirect URI");
    }

    let v6 = server
        .register_code_client(json!({"redirect_uris": ["http://[::1]/cb"]}))
        .await;
    let page = browser
        .get(&Request::new(id(&v6), "http://[::1]:4000/cb").url(&server))
        .await;
    assert!(is_login(&page), "{}", page.body);
    let page = browser
        .get(&Request::new(id(&v6), "http://[::1]:4000/cb2").url(&server))
        .await;
    assert_error_page(&page, 400, "Unregistered redirect URI");

    // A registered query is part of the URI: kept in answers, never changed.
    let tenant = "https://app.example.com/cb?tenant=1";
    let queried = server
        .register_code_client(json!({
            "redirect_uris": [tenant],
            "application_type": "web",
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    for bad in [
        "https://app.example.com/cb?tenant=2",
        "https://app.example.com/cb?tenant=1&x=2",
        "https://app.example.com/cb",
    ] {
        let page = browser
            .get(&Request::new(id(&queried), bad).url(&server))
            .await;
        assert_error_page(&page, 400, "Unregistered redirect URI");
    }
    let broken = Request::new(id(&queried), tenant).set("response_type", "token");
    let page = browser.get(&broken.url(&server)).await;
    let params = assert_error_redirect(
        &server,
        &page,
        tenant,
        "unsupported_response_type",
        Some("st-1"),
    );
    assert_eq!(params["tenant"], "1");

    // redirect_uri omitted: implied only by a single non-loopback URI.
    let two = server
        .register_code_client(json!({
            "redirect_uris": [WEB, "https://app.example.com/cb2"],
            "application_type": "web",
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let page = browser
        .get(
            &Request::new(id(&two), WEB)
                .without("redirect_uri")
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "redirect_uri is missing");
    let page = browser
        .get(
            &Request::new(id(&native), LOOPBACK)
                .without("redirect_uri")
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "redirect_uri is missing");
    // OAuth lets a single registered URI be implied; OpenID Connect does not
    // (OIDC Core §3.1.2.1).
    let page = browser
        .get(
            &Request::new(id(&web), WEB)
                .without("redirect_uri")
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "redirect_uri is missing");
    let implied = Request::new(id(&web), WEB)
        .without("redirect_uri")
        .set("scope", "profile");
    let page = browser.get(&implied.url(&server)).await;
    assert!(is_login(&page), "{}", page.body);

    // Unknown, missing or repeated client_id; a client_credentials client.
    let page = browser
        .get(&Request::new("no-such-client", WEB).url(&server))
        .await;
    assert_error_page(&page, 400, "not registered");
    let page = browser
        .get(
            &Request::new(id(&web), WEB)
                .without("client_id")
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "client_id is missing");
    let page = browser
        .get(
            &Request::new(id(&web), WEB)
                .add("client_id", id(&two))
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "repeats client_id");
    let page = browser
        .get(
            &Request::new(id(&web), WEB)
                .add("redirect_uri", "https://evil.example/cb")
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "repeats redirect_uri");
    let machine = server
        .register(&json!({
            "grant_types": ["client_credentials"],
            "redirect_uris": [WEB],
            "scope": "read",
        }))
        .await;
    let page = browser
        .get(&Request::new(id(&machine), WEB).url(&server))
        .await;
    assert_error_page(&page, 400, "not registered for the authorization code flow");
    // Even a request error of such a client is a page.
    let page = browser
        .get(
            &Request::new(id(&machine), WEB)
                .set("response_type", "token")
                .url(&server),
        )
        .await;
    assert_error_page(&page, 400, "not registered for the authorization code flow");
    server
}

/// The code client body of [`web_client`], for registration elsewhere.
fn web_body() -> Value {
    json!({
        "redirect_uris": [WEB],
        "application_type": "web",
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid profile email",
        "client_name": "Governed app",
    })
}

// Issue 5 governance: a client that may not be used gets a page saying
// why, never a sign-in form and never a redirect.
async fn unusable_clients_get_a_page(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let mut browser = Browser::new();
    let says = |client: &Value| Request::new(id(client), WEB);

    // Pending an administrator's approval.
    let iat = server.mint_iat(&json!({"profile": "gated"})).await;
    let response = server.register_with(Some(&iat), &web_body()).await;
    assert_eq!(response.status(), 201);
    let pending: Value = response.json().await.expect("JSON");
    assert_eq!(pending["status"], "pending");
    let page = browser.get(&says(&pending).url(&server)).await;
    assert_error_page(&page, 403, "pending");

    // Revoked, also with a request error that would otherwise redirect.
    let revoked = web_client(&server, "Revoked app").await;
    let (status, body) = server
        .admin_post(
            &format!("/admin/v1/clients/{}/revoke", id(&revoked)),
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = browser.get(&says(&revoked).url(&server)).await;
    assert_error_page(&page, 403, "revoked");
    let page = browser
        .get(&says(&revoked).without("code_challenge").url(&server))
        .await;
    assert_error_page(&page, 403, "revoked");

    // Revoked while the user was at the sign-in form.
    let late = web_client(&server, "Late app").await;
    let login = browser.get(&says(&late).url(&server)).await;
    assert!(is_login(&login), "{}", login.body);
    let (status, _) = server
        .admin_post(
            &format!("/admin/v1/clients/{}/revoke", id(&late)),
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200);
    let page = browser.login(&login, "alice", PASSWORD).await;
    assert_error_page(&page, 403, "revoked");

    // Past its registration's end.
    let expired = web_client(&server, "Expired app").await;
    let sql = "UPDATE clients SET expires_at = $3 WHERE client_id = $1 AND $2 = $2";
    let past = charter_service::now() - 5;
    assert_eq!(server.execute_sql(sql, id(&expired), "", past).await, 1);
    let page = browser.get(&says(&expired).url(&server)).await;
    assert_error_page(&page, 403, "expired");

    // Its organization suspended.
    let suspended = web_client(&server, "Suspended app").await;
    let (status, body) = server
        .admin_post(
            "/admin/v1/organizations/default/suspend",
            json!({"reason": "audit"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = browser.get(&says(&suspended).url(&server)).await;
    assert_error_page(&page, 403, "suspended");
    server
}

// CSRF and browser binding of the sign-in and consent forms.
async fn forms_are_bound_to_browser(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let client = web_client(&server, "Web app").await;
    let request = Request::new(id(&client), WEB);
    let mut browser = Browser::new();
    let login = browser.get(&request.url(&server)).await;
    assert!(is_login(&login), "{}", login.body);
    assert!(browser.cookies.contains_key("charter_browser"));
    let form = login.form().expect("login form");
    let credentials = [("username", "alice"), ("password", PASSWORD)];

    // A wrong anti-CSRF token, or no browser cookie: refused, no session.
    let mut forged = form.clone();
    for field in forged.fields.iter_mut().filter(|(k, _)| k == "csrf") {
        field.1 = "A".repeat(field.1.len());
    }
    let page = browser.submit(&forged, &credentials).await;
    assert_error_page(&page, 403, "expired");
    assert!(sets_no_session(&page));
    let mut stranger = Browser::new();
    let page = stranger.submit(&form, &credentials).await;
    assert_error_page(&page, 403, "expired");
    assert!(sets_no_session(&page));

    // A wrong password: the form again with an error, no session.
    for (username, password) in [("alice", "wrong password"), ("mallory", PASSWORD)] {
        let page = browser.login(&login, username, password).await;
        // 400, not 401: a form is not an HTTP authentication scheme (RFC 9110 §15.5.2).
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(
            is_login(&Page {
                status: 200,
                ..page.clone()
            }),
            "{}",
            page.body
        );
        assert!(page.body.contains("role=\"alert\""), "{}", page.body);
        assert!(page.body.contains("wrong"), "{}", page.body);
        assert!(sets_no_session(&page));
        assert!(!browser.cookies.contains_key("charter_session"));
    }
    let consent = browser.login(&login, "alice", PASSWORD).await;
    assert!(is_consent(&consent), "{}", consent.body);
    assert!(browser.cookies.contains_key("charter_session"));

    // The consent form from another browser, even with the stolen session.
    let mut other = Browser::new();
    assert!(is_login(&other.get(&request.url(&server)).await));
    other.cookies.insert(
        "charter_session".into(),
        browser.cookies["charter_session"].clone(),
    );
    let page = other.consent(&consent, "allow").await;
    assert_error_page(&page, 403, "expired");
    // A wrong token in the right browser.
    let mut forged = consent.form().expect("consent form");
    for field in forged.fields.iter_mut().filter(|(k, _)| k == "csrf") {
        field.1 = "A".repeat(field.1.len());
    }
    let page = browser.submit(&forged, &[("decision", "allow")]).await;
    assert_error_page(&page, 403, "expired");

    // Answered once: the same forms again get no second code.
    let page = browser.consent(&consent, "allow").await;
    code_of(&server, &page, &request);
    for decision in ["allow", "deny"] {
        let page = browser.consent(&consent, decision).await;
        assert_error_page(&page, 403, "expired");
    }
    let page = browser.login(&login, "alice", PASSWORD).await;
    assert_error_page(&page, 403, "expired");

    // A form left open past the interaction's lifetime.
    let login = browser
        .get(
            &Request::new(id(&client), WEB)
                .set("prompt", "login")
                .url(&server),
        )
        .await;
    assert!(is_login(&login), "{}", login.body);
    let sql = "UPDATE interactions SET expires_at = $3 WHERE client_id = $1 AND $2 = $2";
    assert!(
        server
            .execute_sql(sql, id(&client), "", charter_service::now() - 1)
            .await
            >= 1
    );
    let page = browser.login(&login, "alice", PASSWORD).await;
    assert_error_page(&page, 403, "expired");
    server
}

// Request errors once the client and redirect URI are good: back to the
// client with the error, state and iss (RFC 6749 §4.1.2.1, RFC 9207).
async fn request_errors_go_back_to_the_client(server: TestServer) -> TestServer {
    let client = web_client(&server, "Web app").await;
    let request = || Request::new(id(&client), WEB);
    let mut browser = Browser::new();
    for (broken, error) in [
        (
            request().set("response_type", "token"),
            "unsupported_response_type",
        ),
        (
            request().set("response_type", "code id_token"),
            "unsupported_response_type",
        ),
        (request().without("response_type"), "invalid_request"),
        (request().add("scope", "email"), "invalid_request"),
        (request().add("state", "st-2"), "invalid_request"),
        (
            request().set("request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (
            request().set("request_uri", "https://app.example.com/r"),
            "request_uri_not_supported",
        ),
        (
            request().set("response_mode", "fragment"),
            "invalid_request",
        ),
        (request().set("prompt", "none login"), "invalid_request"),
        (request().set("scope", "admin"), "invalid_scope"),
        (
            request().set("resource", "https://evil.example/"),
            "invalid_target",
        ),
        (
            request().set("resource", "https://api.example.com/#x"),
            "invalid_target",
        ),
        (request().set("resource", "/relative"), "invalid_target"),
        (
            request()
                .set("resource", crate::authorization::API)
                .add("resource", "https://evil.example/"),
            "invalid_target",
        ),
    ] {
        let page = browser.get(&broken.url(&server)).await;
        assert_error_redirect(&server, &page, WEB, error, Some("st-1"));
    }
    // state comes back exactly, whatever it holds.
    let odd = "a b&c=d#e/f?g%20é";
    let page = browser
        .get(
            &request()
                .set("state", odd)
                .set("response_type", "token")
                .url(&server),
        )
        .await;
    assert_error_redirect(&server, &page, WEB, "unsupported_response_type", Some(odd));
    // Without state, the error still carries iss.
    let page = browser
        .get(
            &request()
                .without("state")
                .set("response_type", "token")
                .url(&server),
        )
        .await;
    assert_error_redirect(&server, &page, WEB, "unsupported_response_type", None);

    // OIDC Core §3.1.2.1: POST is answered like GET.
    let post = |r: Request| {
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(
            r.url(&server).split_once('?').expect("query").1.as_bytes(),
        )
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
        fields
    };
    let page = browser
        .post(&server.url("/authorize"), &post(request()))
        .await;
    assert!(is_login(&page), "{}", page.body);
    let page = browser
        .post(
            &server.url("/authorize"),
            &post(request().set("response_type", "token")),
        )
        .await;
    assert_error_redirect(
        &server,
        &page,
        WEB,
        "unsupported_response_type",
        Some("st-1"),
    );
    server
}

// TOK-10, TOK-18 under concurrency: of simultaneous redemptions of one code
// or one refresh token at most one succeeds, and what it got is revoked.
async fn concurrent_reuse_revokes(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let client = web_client(&server, "Racy app").await;
    let mut browser = Browser::new();
    let request = Request::new(id(&client), WEB);
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let form = request.exchange(&code);
    let answers = join_all((0..4).map(|_| token_as(&server, Some(&client), &form))).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|a| a.0 == 200)
        .map(|a| &a.1)
        .collect();
    assert!(won.len() <= 1, "{answers:?}");
    for answer in answers.iter().filter(|a| a.0 != 200) {
        assert_eq!(outcome(answer), (400, Some("invalid_grant")), "{answers:?}");
    }
    for tokens in won {
        assert!(
            !active(&server, &client, text(tokens, "access_token")).await,
            "{answers:?}"
        );
    }

    let request = Request::new(id(&client), WEB);
    let code = authorize(&server, &mut browser, &request, "alice").await;
    let (status, tokens) = token_as(&server, Some(&client), &request.exchange(&code)).await;
    assert_eq!(status, 200, "{tokens}");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", text(&tokens, "refresh_token")),
    ];
    let answers = join_all((0..4).map(|_| token_as(&server, Some(&client), &form))).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|a| a.0 == 200)
        .map(|a| &a.1)
        .collect();
    assert!(won.len() <= 1, "{answers:?}");
    for answer in answers.iter().filter(|a| a.0 != 200) {
        assert_eq!(outcome(answer), (400, Some("invalid_grant")), "{answers:?}");
    }
    assert!(!active(&server, &client, text(&tokens, "access_token")).await);
    for tokens in won {
        assert!(!active(&server, &client, text(tokens, "access_token")).await);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", text(tokens, "refresh_token")),
        ];
        let answer = token_as(&server, Some(&client), &form).await;
        assert_eq!(outcome(&answer), (400, Some("invalid_grant")));
    }
    server
}

// OIDC Core §3.1.2.1: max_age holds when the code is issued, so a sign-in
// that grew too old while the consent page was open is asked for again.
async fn max_age_is_checked_at_consent(server: TestServer) -> TestServer {
    server.create_user("alice", PASSWORD).await;
    let client = web_client(&server, "Web app").await;
    let request = Request::new(id(&client), WEB).set("max_age", "600");
    let mut browser = Browser::new();
    let page = browser.get(&request.url(&server)).await;
    let consent = browser.login(&page, "alice", PASSWORD).await;
    assert!(is_consent(&consent), "{}", consent.body);
    let backdate = "UPDATE interactions SET auth_time = $3 WHERE client_id = $1 AND $2 = $2";
    let old = charter_service::now() - 3_600;
    assert_eq!(server.execute_sql(backdate, id(&client), "", old).await, 1);
    let again = browser.consent(&consent, "allow").await;
    assert!(is_login(&again), "{}", again.body);
    assert!(again.body.contains("recent sign-in"), "{}", again.body);
    assert!(again.location().is_none());
    let consent = browser.login(&again, "alice", PASSWORD).await;
    let done = browser.consent(&consent, "allow").await;
    code_of(&server, &done, &request);
    server
}

on_both_backends!(options = crate::authorization::options();
    max_age_is_checked_at_consent,
    pkce_is_required,
    redirect_uri_near_misses,
    unusable_clients_get_a_page,
    forms_are_bound_to_browser,
    request_errors_go_back_to_the_client,
    concurrent_reuse_revokes,
);
