//! End users of the built-in directory over the admin API: creation with
//! validation and argon2id hashing, duplicates, listing, disabling and
//! enabling with audit entries, admin roles, remembered consents and their
//! revocation, and sign-in through the `UserDirectory` interface.

use charter_service::{LocalUsers, UserDirectory};
use charter_store::{AuthorizationCode, Consent, Interaction};
use charter_testkit::{json, on_both_backends, TestServer};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

async fn create(server: &TestServer, username: &str) -> Value {
    let (status, user) = server
        .admin_post(
            "/admin/v1/users",
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    user
}

/// An admin request with another token; the status and JSON body.
async fn request(
    server: &TestServer,
    method: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = server.url(path);
    let mut builder = match method {
        "GET" => server.http.get(url),
        "POST" => server.http.post(url),
        "DELETE" => server.http.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let response = builder.bearer_auth(token).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Audit entries whose action is `action`.
async fn audited(server: &TestServer, action: &str) -> Vec<Value> {
    let page = server.admin_get("/admin/v1/audit?limit=1000").await;
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["action"] == action)
        .collect()
}

// Creation answers 201 with the user and never the password or its hash;
// the stored hash is an argon2id PHC string.
async fn create_user(server: TestServer) -> TestServer {
    let (status, user) = server
        .admin_post(
            "/admin/v1/users",
            json!({"username": "Alice", "password": PASSWORD, "name": "Alice Smith", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    assert!(id.starts_with("usr_"), "{id}");
    assert_eq!(
        user["username"], "alice",
        "usernames are stored in lower case"
    );
    assert_eq!(user["name"], "Alice Smith");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["disabled"], false);
    assert!(user["created_at"].is_i64());
    let mut members: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["created_at", "disabled", "email", "id", "name", "username"]
    );
    let text = user.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );

    let stored = server.store().user(id).await.unwrap().expect("stored");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id with the OWASP parameters"
    );
    assert!(
        !format!("{stored:?}").contains("argon2"),
        "Debug is redacted"
    );

    let entries = audited(&server, "user.create").await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("admin"));
    assert!(entries[0]["reasons"][0].as_str().unwrap().contains(id));
    let log = server
        .admin_get("/admin/v1/audit?limit=1000")
        .await
        .to_string();
    assert!(!log.contains(PASSWORD) && !log.contains("argon2"));

    let doc = server.get_json(&server.url("/admin/v1/openapi.json")).await;
    for (method, path) in [
        ("get", "/admin/v1/users"),
        ("post", "/admin/v1/users"),
        ("post", "/admin/v1/users/{id}/disable"),
        ("post", "/admin/v1/users/{id}/enable"),
        ("get", "/admin/v1/users/{id}/consents"),
        ("delete", "/admin/v1/users/{id}/consents/{client_id}"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    server
}

// A taken username is a conflict (409), whatever its case; malformed
// input is invalid_request (400) naming the rule.
async fn refusals(server: TestServer) -> TestServer {
    create(&server, "bob").await;
    for username in ["bob", "BOB"] {
        let (status, answer) = server
            .admin_post(
                "/admin/v1/users",
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"], "conflict");
    }
    let check = |body: Value, needle: &'static str| {
        let server = &server;
        async move {
            let (status, answer) = server.admin_post("/admin/v1/users", body).await;
            assert_eq!(status, 400, "{answer}");
            assert_eq!(answer["error"], "invalid_request");
            let description = answer["error_description"].as_str().unwrap();
            assert!(description.contains(needle), "{description}");
        }
    };
    check(
        json!({"username": "carol", "password": "short-pass"}),
        "password: must be 12 to 256 characters long",
    )
    .await;
    check(
        json!({"username": "carol", "password": "x".repeat(257)}),
        "12 to 256",
    )
    .await;
    check(json!({"username": "carol"}), "password: required").await;
    check(
        json!({"username": "carol smith", "password": PASSWORD}),
        "username: use 1 to 64 characters",
    )
    .await;
    check(
        json!({"username": "c".repeat(65), "password": PASSWORD}),
        "username",
    )
    .await;
    check(
        json!({"username": "carol", "password": PASSWORD, "email": "carol"}),
        "email",
    )
    .await;
    check(
        json!({"username": "carol", "password": PASSWORD, "name": 7}),
        "name: must be a string",
    )
    .await;
    let users = server.admin_get("/admin/v1/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    server
}

// Disabling and enabling are audited; a disabled user cannot sign in and
// is not a user to the flow; an unknown id is 404.
async fn disable_and_enable(server: TestServer) -> TestServer {
    let user = create(&server, "dave").await;
    create(&server, "erin").await;
    let id = user["id"].as_str().unwrap();
    let directory = LocalUsers::new(server.store().clone());

    let listed = server.admin_get("/admin/v1/users").await;
    let names: Vec<&str> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dave", "erin"], "by username");
    assert!(listed["users"][0].get("password_hash").is_none());
    let limited = server.admin_get("/admin/v1/users?limit=1").await;
    assert_eq!(limited["users"].as_array().unwrap().len(), 1);

    let (status, answer) = server
        .admin_post(&format!("/admin/v1/users/{id}/disable"), json!({}))
        .await;
    assert_eq!(
        (status, &answer["disabled"]),
        (200, &json!(true)),
        "{answer}"
    );
    let listed = server.admin_get("/admin/v1/users").await;
    assert_eq!(listed["users"][0]["disabled"], true);
    assert_eq!(listed["users"][1]["disabled"], false);
    assert!(directory
        .authenticate("dave", PASSWORD)
        .await
        .unwrap()
        .is_none());
    assert!(directory.user(id).await.unwrap().is_none());

    // Disabling again changes nothing and audits nothing.
    let (status, _) = server
        .admin_post(&format!("/admin/v1/users/{id}/disable"), json!({}))
        .await;
    assert_eq!(status, 200);

    let (status, answer) = server
        .admin_post(&format!("/admin/v1/users/{id}/enable"), json!({}))
        .await;
    assert_eq!(
        (status, &answer["disabled"]),
        (200, &json!(false)),
        "{answer}"
    );
    assert_eq!(
        directory.user(id).await.unwrap().map(|u| u.username),
        Some("dave".to_owned())
    );

    for action in ["user.disable", "user.enable"] {
        let entries = audited(&server, action).await;
        assert_eq!(entries.len(), 1, "{action}: {entries:?}");
        assert!(entries[0]["actor"].as_str().unwrap().starts_with("admin"));
        assert!(entries[0]["reasons"][0].as_str().unwrap().contains(id));
    }

    let (status, answer) = server
        .admin_post("/admin/v1/users/usr_nobody/disable", json!({}))
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "not_found");
    server
}

// Only an admin-role token changes users; a read-only one lists them.
async fn roles(server: TestServer) -> TestServer {
    let user = create(&server, "frank").await;
    let id = user["id"].as_str().unwrap();
    let (_, reader) = server
        .admin_post("/admin/v1/admin-tokens", json!({"role": "read_only"}))
        .await;
    let reader = reader["admin_token"].as_str().unwrap();
    let (status, answer) = request(
        &server,
        "POST",
        reader,
        "/admin/v1/users",
        Some(json!({"username": "grace", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"], "insufficient_scope");
    let (status, _) = request(
        &server,
        "POST",
        reader,
        &format!("/admin/v1/users/{id}/disable"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = request(
        &server,
        "DELETE",
        reader,
        &format!("/admin/v1/users/{id}/consents/any"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, listed) = request(&server, "GET", reader, "/admin/v1/users", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["users"].as_array().unwrap().len(), 1);
    let (status, _) = request(
        &server,
        "GET",
        reader,
        &format!("/admin/v1/users/{id}/consents"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = request(&server, "GET", "not-a-token", "/admin/v1/users", None).await;
    assert_eq!(status, 401);
    server
}

// A remembered consent is listed, and revoking it answers 204, is audited
// and leaves nothing to revoke (404).
async fn consents(server: TestServer) -> TestServer {
    let user = create(&server, "heidi").await;
    let id = user["id"].as_str().unwrap();
    let client = server
        .register(&json!({"grant_types": ["client_credentials"]}))
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let consents_path = format!("/admin/v1/users/{id}/consents");
    assert_eq!(
        server.admin_get(&consents_path).await,
        json!({"consents": []})
    );

    // The authorization endpoint records consent when it issues a code.
    let now = charter_service::now();
    let store = server.store();
    store
        .insert_interaction(Interaction {
            id: "int_test".into(),
            browser_hash: [1; 32],
            client_id: client_id.into(),
            request: json!({}),
            user_id: Some(id.into()),
            auth_time: Some(now),
            created_at: now,
            expires_at: now + 600,
        })
        .await
        .unwrap();
    let code = AuthorizationCode {
        code_hash: [2; 32],
        grant_id: "grt_test".into(),
        client_id: client_id.into(),
        user_id: id.into(),
        redirect_uri: None,
        scope: "openid profile".into(),
        resources: vec!["https://api.example.com/".into()],
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: None,
        auth_time: now,
        dpop_jkt: None,
        expires_at: now + 60,
        used: false,
    };
    let consent = Consent {
        user_id: id.into(),
        client_id: client_id.into(),
        scope: "openid profile".into(),
        resources: vec!["https://api.example.com/".into()],
        granted_at: now,
    };
    assert!(store
        .complete_interaction("int_test", code, Some(consent), None)
        .await
        .unwrap());

    let listed = server.admin_get(&consents_path).await;
    assert_eq!(
        listed,
        json!({"consents": [{
            "client_id": client_id, "scope": "openid profile",
            "resources": ["https://api.example.com/"], "granted_at": now,
        }]})
    );

    let revoke = format!("/admin/v1/users/{id}/consents/{client_id}");
    let (status, _) = request(&server, "DELETE", &server.admin_token, &revoke, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        server.admin_get(&consents_path).await,
        json!({"consents": []})
    );
    let entries = audited(&server, "consent.revoke").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["client_id"], client_id);
    assert!(entries[0]["reasons"][0].as_str().unwrap().contains(id));

    let (status, answer) = request(&server, "DELETE", &server.admin_token, &revoke, None).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"], "not_found");
    let (status, _) = request(
        &server,
        "GET",
        &server.admin_token,
        "/admin/v1/users/usr_nobody/consents",
        None,
    )
    .await;
    assert_eq!(status, 404);
    server
}

// Sign-in through the UserDirectory interface: the right password signs
// in, whatever the username's case; a wrong password and an unknown
// username get the same answer.
async fn authenticate(server: TestServer) -> TestServer {
    let user = create(&server, "ivan").await;
    let directory = LocalUsers::new(server.store().clone());
    let signed_in = directory
        .authenticate("Ivan", PASSWORD)
        .await
        .unwrap()
        .expect("signed in");
    assert_eq!(signed_in.id, user["id"].as_str().unwrap());
    assert_eq!(signed_in.username, "ivan");
    for (username, password) in [
        ("ivan", "correct horse battery stapl"),
        ("ivan", ""),
        ("nobody", PASSWORD),
        ("not a username", PASSWORD),
    ] {
        assert!(
            directory
                .authenticate(username, password)
                .await
                .unwrap()
                .is_none(),
            "{username}"
        );
    }
    let long = "x".repeat(100_000);
    assert!(directory
        .authenticate("ivan", &long)
        .await
        .unwrap()
        .is_none());
    server
}

on_both_backends!(
    create_user,
    refusals,
    disable_and_enable,
    roles,
    consents,
    authenticate,
);
