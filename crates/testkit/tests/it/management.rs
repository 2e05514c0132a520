//! RFC 7592 client configuration endpoint: read, full-replacement update
//! with token rotation, delete, and the 401-never-404 rule.

use charter_testkit::{json, on_both_backends, TestServer};
use serde_json::Value;

struct Registered {
    uri: String,
    rat: String,
    body: Value,
}

async fn registered(server: &TestServer, body: Value) -> Registered {
    let client = server.register(&body).await;
    Registered {
        uri: client["registration_client_uri"]
            .as_str()
            .unwrap()
            .to_owned(),
        rat: client["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        body: client,
    }
}

async fn get(
    server: &TestServer,
    uri: &str,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = server.http.get(uri);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

async fn put(server: &TestServer, uri: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = server
        .http
        .put(uri)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn web_client() -> Value {
    json!({
        "redirect_uris": ["https://app.example.com/cb"],
        "client_name": "Agent",
        "logo_uri": "https://app.example.com/logo.png",
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

// MGMT-03, MGMT-04, MGMT-22: reads return the current metadata, idempotently.
async fn read(server: TestServer) -> TestServer {
    let c = registered(&server, web_client()).await;
    let (status, first, headers) = get(&server, &c.uri, Some(&c.rat)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    let (_, second, _) = get(&server, &c.uri, Some(&c.rat)).await;
    assert_eq!(first, second);
    assert_eq!(first["client_id"], c.body["client_id"]);
    assert_eq!(
        first["client_secret_expires_at"],
        c.body["client_secret_expires_at"]
    );
    assert_eq!(first["client_id_issued_at"], c.body["client_id_issued_at"]);
    for member in [
        "redirect_uris",
        "client_name",
        "logo_uri",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
    ] {
        assert_eq!(first[member], c.body[member], "{member}");
    }
    // Stored only as hashes: neither credential can be shown again.
    assert!(
        first.get("client_secret").is_none() && first.get("registration_access_token").is_none()
    );
    server
}

// MGMT-05..07, OIDR-25: missing, wrong, foreign tokens and unknown clients → 401, never 404.
async fn unauthorized_access(server: TestServer) -> TestServer {
    let a = registered(&server, web_client()).await;
    let b = registered(&server, web_client()).await;
    let (status, _, headers) = get(&server, &a.uri, None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    let unknown = server.url("/register/unknown-client-id");
    for (uri, token) in [
        (&a.uri, "chr_wrong"),
        (&a.uri, b.rat.as_str()),
        (&unknown, a.rat.as_str()),
        (&a.uri, server.iat.as_str()),
    ] {
        let (status, body, headers) = get(&server, uri, Some(token)).await;
        assert_eq!(status, 401, "{uri}");
        assert_eq!(body["error"], "invalid_token");
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""));
        let response = server
            .http
            .delete(uri)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let (status, _) = put(&server, uri, token, &json!({"client_id": "x"})).await;
        assert_eq!(status, 401);
    }
    // Both clients are untouched.
    assert_eq!(get(&server, &a.uri, Some(&a.rat)).await.0, 200);
    assert_eq!(get(&server, &b.uri, Some(&b.rat)).await.0, 200);
    // MGMT-19: an unsupported method on the configuration endpoint is 405.
    let response = server
        .http
        .post(&a.uri)
        .bearer_auth(&a.rat)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    server
}

// MGMT-09, MGMT-10, MGMT-15, MGMT-20: replacement, not merge; the RAT rotates.
async fn update_replaces_and_rotates(server: TestServer) -> TestServer {
    let c = registered(&server, web_client()).await;
    let client_id = c.body["client_id"].as_str().unwrap();
    let replacement = json!({
        "client_id": client_id,
        "redirect_uris": ["https://app.example.com/cb2"],
        "client_name": "Agent v2",
        "grant_types": ["authorization_code"],
    });
    let (status, updated) = put(&server, &c.uri, &c.rat, &replacement).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["client_id"], client_id);
    assert_eq!(updated["client_name"], "Agent v2");
    assert!(
        updated.get("logo_uri").is_none(),
        "omitted member is removed"
    );
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://app.example.com/cb2"])
    );
    assert_eq!(
        updated["client_secret_expires_at"],
        c.body["client_secret_expires_at"]
    );
    assert!(
        updated.get("client_secret").is_none(),
        "the secret is kept, not reissued"
    );
    let new_rat = updated["registration_access_token"].as_str().unwrap();
    assert_ne!(new_rat, c.rat);
    assert_eq!(
        get(&server, &c.uri, Some(&c.rat)).await.0,
        401,
        "the old RAT dies at once"
    );
    let (status, read, _) = get(&server, &c.uri, Some(new_rat)).await;
    assert_eq!(status, 200);
    assert!(read.get("logo_uri").is_none());
    assert_eq!(read["client_name"], "Agent v2");
    server
}

// MGMT-11..14: forbidden members, client_id rules, secrets, invalid metadata.
async fn update_refusals(server: TestServer) -> TestServer {
    let c = registered(&server, web_client()).await;
    let client_id = c.body["client_id"].as_str().unwrap();
    let secret = c.body["client_secret"].as_str().unwrap();
    let with = |extra: Value| {
        let mut body = web_client();
        body["client_id"] = json!(client_id);
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let mut no_id = web_client();
    no_id.as_object_mut().unwrap().remove("client_id");
    let cases = [
        (no_id, "invalid_request"),
        (
            with(json!({"client_id": "someone-else"})),
            "invalid_request",
        ),
        (
            with(json!({"registration_access_token": c.rat})),
            "invalid_request",
        ),
        (
            with(json!({"registration_client_uri": c.uri})),
            "invalid_request",
        ),
        (
            with(json!({"client_secret_expires_at": 0})),
            "invalid_request",
        ),
        (with(json!({"client_id_issued_at": 1})), "invalid_request"),
        (
            with(json!({"client_secret": "chs_chosen-by-the-client"})),
            "invalid_request",
        ),
        (
            with(json!({"redirect_uris": ["https://app.example.com/cb#frag"]})),
            "invalid_redirect_uri",
        ),
        (
            with(json!({"jwks_uri": "https://app.example.com/jwks", "jwks": {"keys": []}})),
            "invalid_client_metadata",
        ),
    ];
    for (body, error) in cases {
        let (status, answer) = put(&server, &c.uri, &c.rat, &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"], error, "{body} → {answer}");
    }
    // Nothing changed, and the RAT did not rotate on refusals.
    let (status, read, _) = get(&server, &c.uri, Some(&c.rat)).await;
    assert_eq!(status, 200);
    assert_eq!(read["logo_uri"], "https://app.example.com/logo.png");

    // The current secret may be echoed back.
    let (status, updated) = put(
        &server,
        &c.uri,
        &c.rat,
        &with(json!({"client_secret": secret})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    server
}

// Auth method changes: a public client that becomes confidential gets a secret.
async fn update_changes_credentials(server: TestServer) -> TestServer {
    let c = registered(
        &server,
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "application_type": "native"}),
    )
    .await;
    assert!(c.body.get("client_secret").is_none());
    let client_id = c.body["client_id"].as_str().unwrap();
    let (status, updated) = put(
        &server,
        &c.uri,
        &c.rat,
        &json!({"client_id": client_id, "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated["client_secret"]
        .as_str()
        .is_some_and(|s| s.len() >= 43));
    assert!(updated["client_secret_expires_at"].as_i64().unwrap() > 0);
    let rat = updated["registration_access_token"].as_str().unwrap();
    let (status, public_again) = put(
        &server,
        &c.uri,
        rat,
        &json!({"client_id": client_id, "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "application_type": "native"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(public_again.get("client_secret_expires_at").is_none());
    server
}

// MGMT-16, MGMT-17, MGMT-06: delete → 204, then gone for every later use.
async fn delete(server: TestServer) -> TestServer {
    let c = registered(&server, web_client()).await;
    let response = server
        .http
        .delete(&c.uri)
        .bearer_auth(&c.rat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(get(&server, &c.uri, Some(&c.rat)).await.0, 401);
    let response = server
        .http
        .delete(&c.uri)
        .bearer_auth(&c.rat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let mut body = web_client();
    body["client_id"] = c.body["client_id"].clone();
    assert_eq!(put(&server, &c.uri, &c.rat, &body).await.0, 401);
    assert_eq!(server.client_count().await, 0);
    server
}

on_both_backends!(
    read,
    unauthorized_access,
    update_replaces_and_rotates,
    update_refusals,
    update_changes_credentials,
    delete
);

// MGMT-15 profile caveat: rotation on update can be switched off, and then
// the registration access token stays the same.
#[tokio::test]
async fn rotation_on_update_can_be_disabled() {
    let options = charter_testkit::Options {
        extra_toml: "[registration]\nrotate_registration_access_token_on_update = false\n".into(),
        ..Default::default()
    };
    let server = TestServer::start(charter_testkit::Backend::Sqlite, options)
        .await
        .unwrap();
    let c = registered(&server, web_client()).await;
    let mut body = web_client();
    body["client_id"] = c.body["client_id"].clone();
    body["client_name"] = json!("renamed");
    let (status, updated) = put(&server, &c.uri, &c.rat, &body).await;
    assert_eq!(status, 200);
    assert!(updated.get("registration_access_token").is_none());
    let (status, read, _) = get(&server, &c.uri, Some(&c.rat)).await;
    assert_eq!(status, 200, "the unchanged token keeps working");
    assert_eq!(read["client_name"], "renamed");
    server.stop().await;
}
