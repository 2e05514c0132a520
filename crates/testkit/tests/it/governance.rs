//! Governance on the registration path: policy profiles decide, initial
//! access tokens are counted atomically, clients cannot claim their
//! organization or status.

use charter_testkit::{json, on_both_backends, Options, TestServer};
use serde_json::Value;

fn governed() -> Options {
    Options {
        extra_toml: r#"
[policy]
version = "2026-11-23.1"
default_profile = "open"

[policy.profiles.open]

[policy.profiles.agents]
grant_types = ["client_credentials"]
token_endpoint_auth_methods = ["client_secret_basic", "private_key_jwt"]
scopes = ["read", "write", "deploy"]
default_scope = "read"
required_fields = ["contacts"]
approval = "when_scopes_outside"
approval_scopes = ["read", "write"]
max_clients_per_organization = 3
client_lifetime = "30d"
secret_lifetime = "7d"

[policy.profiles.web]
redirect_uris = ["https://app.example.com/cb", "https://*.tenants.example.com/oauth/"]
loopback_redirect_uris = false
"#
        .into(),
        ..Default::default()
    }
}

/// A refused registration (with `iat`, or anonymous when it is empty).
async fn refusal(server: &TestServer, iat: &str, body: Value) -> Value {
    let response = server
        .register_with(Some(iat).filter(|t| !t.is_empty()), &body)
        .await;
    assert_eq!(response.status(), 400, "{body}");
    response.json().await.unwrap()
}

// Admin tokens carry a role: read-only reads, an approver also decides
// pending clients, only an admin changes organizations and tokens.
async fn admin_roles(server: TestServer) -> TestServer {
    let mint = |role: &str| server.admin_post("/admin/v1/admin-tokens", json!({"role": role}));
    let (status, reader) = mint("read_only").await;
    assert_eq!(status, 201, "{reader}");
    let (_, approver) = mint("approver").await;
    let as_role = |token: &Value, path: &str, body: Option<Value>| {
        let token = token["admin_token"].as_str().unwrap().to_owned();
        let request = match body {
            Some(body) => server.http.post(server.url(path)).json(&body),
            None => server.http.get(server.url(path)),
        };
        request.bearer_auth(token).send()
    };
    assert_eq!(
        as_role(&reader, "/admin/v1/organizations", None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        as_role(&reader, "/admin/v1/audit/verify", None)
            .await
            .unwrap()
            .status(),
        200
    );
    let refused = as_role(
        &reader,
        "/admin/v1/organizations",
        Some(json!({"name": "x"})),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    assert_eq!(
        as_role(
            &approver,
            "/admin/v1/admin-tokens",
            Some(json!({"role": "admin"}))
        )
        .await
        .unwrap()
        .status(),
        403
    );

    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let pending: Value = server
        .register_with(Some(&iat), &json!({"grant_types": ["client_credentials"], "contacts": ["a@b.example"], "scope": "deploy"}))
        .await
        .json()
        .await
        .unwrap();
    let approve = format!(
        "/admin/v1/clients/{}/approve",
        pending["client_id"].as_str().unwrap()
    );
    assert_eq!(
        as_role(&reader, &approve, Some(json!({"reason": "r"})))
            .await
            .unwrap()
            .status(),
        403
    );
    let approved = as_role(&approver, &approve, Some(json!({"reason": "ok"})))
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let record: Value = approved.json().await.unwrap();
    assert_eq!(
        record["by"],
        format!("admin:{}", approver["id"].as_str().unwrap()),
        "the approver is named"
    );
    server
}

// The OpenAPI document describes every admin route the tests use.
async fn admin_openapi(server: TestServer) -> TestServer {
    let doc = server.get_json(&server.url("/admin/v1/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], server.issuer.as_str());
    for (method, path) in [
        ("get", "/admin/v1/organizations"),
        ("post", "/admin/v1/organizations"),
        ("post", "/admin/v1/organizations/{name}/{action}"),
        (
            "get",
            "/admin/v1/organizations/{organization}/initial-access-tokens",
        ),
        (
            "post",
            "/admin/v1/organizations/{organization}/initial-access-tokens",
        ),
        ("post", "/admin/v1/initial-access-tokens/{id}/revoke"),
        ("post", "/admin/v1/clients/{client_id}/{action}"),
        ("post", "/admin/v1/admin-tokens"),
        ("post", "/admin/v1/policy/check"),
        ("get", "/admin/v1/audit"),
        ("get", "/admin/v1/audit/verify"),
        ("post", "/admin/v1/lifecycle/sweep"),
        ("get", "/admin/v1/reports/clients"),
        ("get", "/admin/v1/reports/counts"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    server
}

// An IAT limited to a network works only from inside it.
async fn iat_source_network(server: TestServer) -> TestServer {
    let body = json!({"grant_types": ["client_credentials"]});
    let elsewhere = server
        .mint_iat(&json!({"allowed_cidr": "192.0.2.0/24"}))
        .await;
    let response = server.register_with(Some(&elsewhere), &body).await;
    assert_eq!(response.status(), 401);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error_description"]
        .as_str()
        .unwrap()
        .contains("address"));
    let loopback = server
        .mint_iat(&json!({"allowed_cidr": "127.0.0.0/8"}))
        .await;
    assert_eq!(
        server.register_with(Some(&loopback), &body).await.status(),
        201
    );
    let (status, _) = server
        .admin_post(
            "/admin/v1/organizations/default/initial-access-tokens",
            json!({"allowed_cidr": "not-a-net"}),
        )
        .await;
    assert_eq!(status, 400);
    server
}

// Every violated rule of the profile is listed; nothing is stored.
async fn profile_refusals_list_every_rule(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let answer = refusal(
        &server,
        &iat,
        json!({"redirect_uris": ["https://a.example/cb"], "scope": "admin"}),
    )
    .await;
    assert_eq!(answer["error"], "invalid_client_metadata");
    let description = answer["error_description"].as_str().unwrap();
    for rule in [
        "contacts: required",
        "authorization_code",
        "'admin' is not allowed",
    ] {
        assert!(
            description.contains(rule),
            "{rule} missing from {description}"
        );
    }
    let web = server.mint_iat(&json!({"profile": "web"})).await;
    let answer = refusal(
        &server,
        &web,
        json!({"redirect_uris": ["https://evil.example/cb"]}),
    )
    .await;
    assert_eq!(answer["error"], "invalid_redirect_uri");
    let answer = refusal(
        &server,
        &web,
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(answer["error"], "invalid_redirect_uri");
    let ok = server
        .register_with(
            Some(&web),
            &json!({"redirect_uris": ["https://t1.tenants.example.com/oauth/cb"]}),
        )
        .await;
    assert_eq!(ok.status(), 201);
    assert_eq!(server.client_count().await, 1);
    server
}

// Substitution echoed, lifetimes from the profile, read-only members.
async fn admitted_with_substitution(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let client = server
        .register_with(
            Some(&iat),
            &json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"],
                    "status": "suspended", "organization_id": "org_someone_else"}),
        )
        .await;
    assert_eq!(client.status(), 201);
    let client: Value = client.json().await.unwrap();
    assert_eq!(
        client["scope"], "read",
        "the profile's default scope is substituted and echoed"
    );
    assert_eq!(client["status"], "active", "a client cannot set its status");
    assert_ne!(
        client["organization_id"], "org_someone_else",
        "nor its organization"
    );
    assert!(client["organization_id"]
        .as_str()
        .unwrap()
        .starts_with("org_"));
    let secret_lifetime = client["client_secret_expires_at"].as_i64().unwrap()
        - client["client_id_issued_at"].as_i64().unwrap();
    assert_eq!(
        secret_lifetime,
        7 * 86_400,
        "secret lifetime from the profile"
    );
    server
}

// Pending approval is a state the client can see with GET.
async fn pending_is_visible(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let client = server
        .register_with(Some(&iat), &json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"], "scope": "read deploy"}))
        .await;
    assert_eq!(client.status(), 201);
    let client: Value = client.json().await.unwrap();
    assert_eq!(client["status"], "pending");
    let read: Value = server
        .http
        .get(client["registration_client_uri"].as_str().unwrap())
        .bearer_auth(client["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "pending");
    server
}

// An update cannot take a client outside its profile (RFC 7592 PUT under policy).
async fn update_stays_inside_profile(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let body = json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"], "scope": "read"});
    let client = server
        .register_with(Some(&iat), &body)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let uri = client["registration_client_uri"].as_str().unwrap();
    let rat = client["registration_access_token"].as_str().unwrap();
    for (change, fragment) in [
        (json!({"scope": "read admin"}), "not allowed"),
        (json!({"scope": "read deploy"}), "approval"),
        (json!({"contacts": null}), "contacts: required"),
    ] {
        let mut update = body.clone();
        update["client_id"] = client["client_id"].clone();
        update
            .as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let response = server
            .http
            .put(uri)
            .bearer_auth(rat)
            .json(&update)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{update}");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error_description"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{answer}"
        );
    }
    server
}

// The organization quota of the profile.
async fn quota(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let body = json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"]});
    for _ in 0..3 {
        assert_eq!(server.register_with(Some(&iat), &body).await.status(), 201);
    }
    let answer = refusal(&server, &iat, body).await;
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("has 3 clients"),
        "{answer}"
    );
    server
}

// The quota holds exactly under concurrent registrations.
async fn quota_under_concurrency(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let body = json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"]});
    let attempts: Vec<_> = (0..10)
        .map(|_| server.register_with(Some(&iat), &body))
        .collect();
    let statuses: Vec<u16> = charter_testkit::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(server.client_count().await, 3);
    server
}

// N parallel registrations with an IAT allowing N-k: exactly N-k succeed.
async fn max_uses_under_concurrency(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"max_uses": 7})).await;
    let body = json!({"grant_types": ["client_credentials"]});
    let attempts: Vec<_> = (0..16)
        .map(|_| server.register_with(Some(&iat), &body))
        .collect();
    let mut statuses = Vec::new();
    for response in charter_testkit::join_all(attempts).await {
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(server.client_count().await, 7);
    server
}

// The admin dry run decides without creating anything.
async fn admin_dry_run(server: TestServer) -> TestServer {
    let check = |profile: &str, body: Value| {
        server
            .http
            .post(server.url(&format!("/admin/v1/policy/check?profile={profile}")))
            .bearer_auth(&server.admin_token)
            .json(&body)
            .send()
    };
    let answer: Value = check("agents", json!({"grant_types": ["client_credentials"], "contacts": ["a@b.example"], "scope": "deploy"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["decision"], "pending", "{answer}");
    assert_eq!(answer["policy_version"], "2026-11-23.1");
    let answer: Value = check("agents", json!({"grant_types": ["client_credentials"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["decision"], "refuse");
    assert!(answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("contacts")));
    let response = server
        .http
        .post(server.url("/admin/v1/policy/check"))
        .bearer_auth(&server.iat)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "an IAT is not an admin token");
    assert_eq!(server.client_count().await, 0);
    server
}

// Every attempt is audited with provenance; the chain detects an edited row.
async fn audit_trail(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let admitted = server
        .register_with(
            Some(&iat),
            &json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"]}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    refusal(
        &server,
        &iat,
        json!({"grant_types": ["client_credentials"]}),
    )
    .await;
    let admin = |path: &str| {
        server
            .http
            .get(server.url(path))
            .bearer_auth(&server.admin_token)
            .send()
    };
    let verified: Value = admin("/admin/v1/audit/verify")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["valid"], true, "{verified}");
    let entries: Value = admin("/admin/v1/audit?limit=100")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = entries["entries"].as_array().unwrap().clone();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["event"]["action"].as_str().unwrap(),
                e["event"]["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("bootstrap", "done"),
            ("iat.issue", "done"),
            ("client.register", "admitted"),
            ("client.register", "refused")
        ]
    );
    let registered = &entries[2]["event"];
    assert_eq!(registered["client_id"], admitted["client_id"]);
    assert_eq!(registered["policy_version"], "2026-11-23.1");
    assert_eq!(registered["source"], "127.0.0.1");
    assert!(registered["request_id"].is_string());
    assert!(registered["actor"].as_str().unwrap().starts_with("iat:"));
    assert!(entries[3]["event"]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("contacts"));
    // No secret ever reaches the log.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        iat.as_str(),
        admitted["client_secret"].as_str().unwrap(),
        admitted["registration_access_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "a credential is in the audit log");
    }
    let filtered: Value = admin(&format!(
        "/admin/v1/audit?client_id={}",
        admitted["client_id"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(filtered["entries"].as_array().unwrap().len(), 1);

    server
        .tamper_with_audit_entry(3, "admitted", "refused")
        .await;
    let verified: Value = admin("/admin/v1/audit/verify")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["valid"], false);
    assert_eq!(verified["first_broken_entry"], 3, "{verified}");
    server
}

// Pending → approved (who, why, policy version, until) → active; rejection is final.
async fn approval_is_a_record(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let body = json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"], "scope": "deploy"});
    let a: Value = server
        .register_with(Some(&iat), &body)
        .await
        .json()
        .await
        .unwrap();
    let b: Value = server
        .register_with(Some(&iat), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["status"], "pending");
    let approve = |id: &str| format!("/admin/v1/clients/{id}/approve");
    let (status, answer) = server
        .admin_post(&approve(a["client_id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(status, 400, "a reason is required: {answer}");
    let (status, record) = server
        .admin_post(
            &approve(a["client_id"].as_str().unwrap()),
            json!({"reason": "deploy bot for team X", "valid_for": 86400}),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["policy_version"], "2026-11-23.1");
    assert_eq!(record["reason"], "deploy bot for team X");
    assert_eq!(
        record["until"].as_i64().unwrap() - record["at"].as_i64().unwrap(),
        86400
    );
    assert_eq!(server.read_client(&a).await["status"], "active");
    let (status, _) = server
        .admin_post(
            &approve(a["client_id"].as_str().unwrap()),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(status, 400, "only pending clients are approved");
    let (status, _) = server
        .admin_post(
            &format!(
                "/admin/v1/clients/{}/reject",
                b["client_id"].as_str().unwrap()
            ),
            json!({"reason": "unknown team"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.read_client(&b).await["status"], "rejected");
    let (status, _) = server
        .admin_post(
            &approve(b["client_id"].as_str().unwrap()),
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(status, 400, "a rejected client stays rejected");
    let trail: Value = server
        .http
        .get(server.url("/admin/v1/audit?limit=100"))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"client.approve") && actions.contains(&"client.reject"),
        "{actions:?}"
    );
    server
}

// A filtered audit query searches the whole log, not only its first page.
async fn audit_filter_reads_past_the_first_page(server: TestServer) -> TestServer {
    let body = json!({"grant_types": ["client_credentials"]});
    let mut last = Value::Null;
    for _ in 0..120 {
        last = server.register(&body).await;
    }
    let url = format!(
        "/admin/v1/audit?limit=5&client_id={}",
        last["client_id"].as_str().unwrap()
    );
    let found: Value = server
        .http
        .get(server.url(&url))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = found["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{found}");
    assert_eq!(entries[0]["event"]["client_id"], last["client_id"]);
    server
}

// Pending clients never decided within the pending lifetime are expired by
// the lifecycle sweep, and cannot be approved afterwards.
async fn pending_expires(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let body = json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"], "scope": "deploy"});
    let stale: Value = server
        .register_with(Some(&iat), &body)
        .await
        .json()
        .await
        .unwrap();
    let fresh: Value = server
        .register_with(Some(&iat), &body)
        .await
        .json()
        .await
        .unwrap();
    server
        .backdate_client(stale["client_id"].as_str().unwrap(), 8 * 86_400)
        .await;
    let (status, swept) = server
        .admin_post("/admin/v1/lifecycle/sweep", json!({}))
        .await;
    assert_eq!(status, 200, "{swept}");
    assert_eq!(swept["expired_pending"], json!([stale["client_id"]]));
    assert_eq!(server.read_client(&stale).await["status"], "expired");
    assert_eq!(server.read_client(&fresh).await["status"], "pending");
    let (status, _) = server
        .admin_post(
            &format!(
                "/admin/v1/clients/{}/approve",
                stale["client_id"].as_str().unwrap()
            ),
            json!({"reason": "late"}),
        )
        .await;
    assert_eq!(status, 400);
    server
}

// An approval lapses at its end: the sweep sends the client back to pending
// for re-approval.
async fn approval_lapses(server: TestServer) -> TestServer {
    let iat = server.mint_iat(&json!({"profile": "agents"})).await;
    let body = json!({"grant_types": ["client_credentials"], "contacts": ["ops@example.com"], "scope": "deploy"});
    let client: Value = server
        .register_with(Some(&iat), &body)
        .await
        .json()
        .await
        .unwrap();
    let id = client["client_id"].as_str().unwrap();
    let (status, _) = server
        .admin_post(
            &format!("/admin/v1/clients/{id}/approve"),
            json!({"reason": "one day", "valid_for": 86400}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, swept) = server
        .admin_post("/admin/v1/lifecycle/sweep", json!({}))
        .await;
    assert_eq!(
        swept["approvals_lapsed"],
        json!([]),
        "still within its approval"
    );
    let sql =
        "UPDATE clients SET approved_until = approved_until - $3 WHERE client_id = $1 AND $2 = $2";
    assert_eq!(server.execute_sql(sql, id, "", 2 * 86_400).await, 1);
    let (_, swept) = server
        .admin_post("/admin/v1/lifecycle/sweep", json!({}))
        .await;
    assert_eq!(swept["approvals_lapsed"], json!([id]));
    assert_eq!(server.read_client(&client).await["status"], "pending");
    let (status, _) = server
        .admin_post(
            &format!("/admin/v1/clients/{id}/approve"),
            json!({"reason": "renewed"}),
        )
        .await;
    assert_eq!(status, 200, "re-approval");
    server
}

// Organizations: create, suspend (no registrations), resume, offboard (clients
// and tokens revoked together); tokens listed with usage and revocable.
async fn organization_lifecycle(server: TestServer) -> TestServer {
    let (status, org) = server
        .admin_post("/admin/v1/organizations", json!({"name": "acme"}))
        .await;
    assert_eq!(status, 201, "{org}");
    let (status, _) = server
        .admin_post("/admin/v1/organizations", json!({"name": "acme"}))
        .await;
    assert_eq!(status, 400, "names are unique");
    let (status, minted) = server
        .admin_post(
            "/admin/v1/organizations/acme/initial-access-tokens",
            json!({"max_uses": 3}),
        )
        .await;
    assert_eq!(status, 201);
    let iat = minted["initial_access_token"].as_str().unwrap().to_owned();
    let body = json!({"grant_types": ["client_credentials"]});
    let client: Value = server
        .register_with(Some(&iat), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(client["organization_id"], org["id"]);

    let tokens: Value = server
        .http
        .get(server.url("/admin/v1/organizations/acme/initial-access-tokens"))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = &tokens["initial_access_tokens"][0];
    assert_eq!(
        (token["uses"].as_i64(), token["max_uses"].as_i64()),
        (Some(1), Some(3))
    );
    assert!(
        !tokens.to_string().contains(&iat),
        "listing never shows a token"
    );

    let (status, suspended) = server
        .admin_post(
            "/admin/v1/organizations/acme/suspend",
            json!({"reason": "audit"}),
        )
        .await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (200, Some("suspended"))
    );
    assert_eq!(
        server.register_with(Some(&iat), &body).await.status(),
        401,
        "a suspended organization registers nothing"
    );
    let (status, _) = server
        .admin_post(
            "/admin/v1/organizations/acme/resume",
            json!({"reason": "cleared"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.register_with(Some(&iat), &body).await.status(), 201);

    let (status, offboarded) = server
        .admin_post(
            "/admin/v1/organizations/acme/offboard",
            json!({"reason": "contract ended"}),
        )
        .await;
    assert_eq!(
        (status, offboarded["status"].as_str()),
        (200, Some("offboarded"))
    );
    assert_eq!(server.read_client(&client).await["status"], "revoked");
    assert_eq!(server.register_with(Some(&iat), &body).await.status(), 401);
    let (status, _) = server
        .admin_post(
            "/admin/v1/organizations/acme/resume",
            json!({"reason": "no"}),
        )
        .await;
    assert_eq!(status, 400, "offboarding is final");

    let (_, minted) = server
        .admin_post(
            "/admin/v1/organizations/default/initial-access-tokens",
            json!({}),
        )
        .await;
    let other = minted["initial_access_token"].as_str().unwrap().to_owned();
    let id = minted["id"].as_str().unwrap().to_owned();
    let response = server
        .http
        .post(server.url(&format!("/admin/v1/initial-access-tokens/{id}/revoke")))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        server.register_with(Some(&other), &body).await.status(),
        401,
        "a revoked token registers nothing"
    );
    server
}

on_both_backends!(
    options = super::governed();
    profile_refusals_list_every_rule,
    admitted_with_substitution,
    pending_is_visible,
    update_stays_inside_profile,
    quota,
    max_uses_under_concurrency,
    admin_dry_run,
    audit_trail,
    approval_is_a_record,
    organization_lifecycle,
    iat_source_network,
    admin_roles,
    admin_openapi,
    pending_expires,
    approval_lapses,
    quota_under_concurrency,
    audit_filter_reads_past_the_first_page,
);

// Rate limits: 429 with Retry-After for a registration burst, and a source
// that keeps presenting bad tokens is refused before its token is checked.
#[tokio::test]
async fn rate_limits() {
    let options = Options {
        extra_toml: "[limits]\nregistrations_per_second_per_source = 2\nfailed_authentications_per_minute_per_source = 3\n".into(),
        ..Default::default()
    };
    let server = TestServer::start(charter_testkit::Backend::Sqlite, options)
        .await
        .unwrap();
    let body = json!({"grant_types": ["client_credentials"]});
    let mut limited = None;
    for _ in 0..10 {
        let response = server.register_with(Some(&server.iat), &body).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 201);
    }
    let limited = limited.expect("a burst beyond 2/s is refused");
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let answer: Value = limited.json().await.unwrap();
    assert_eq!(answer["error"], "too_many_requests");

    let read = |token: &str| {
        server
            .http
            .get(server.url("/register/some-client"))
            .bearer_auth(token)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(read("chr_guess").await.unwrap().status().as_u16());
    }
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    let response = server
        .http
        .post(server.url("/admin/v1/organizations"))
        .bearer_auth(&server.admin_token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        429,
        "the blocked source is refused even with a valid token"
    );
    server.stop().await;
}

fn anonymous() -> Options {
    Options {
        extra_toml: r#"
[registration.anonymous]
enabled = true
profile = "anonymous"
registrations_per_minute_per_source = 3

[policy]
version = "anon-1"
default_profile = "default"

[policy.profiles.default]

[policy.profiles.anonymous]
grant_types = ["authorization_code", "refresh_token"]
token_endpoint_auth_methods = ["none"]
scopes = ["mcp"]
default_scope = "mcp"
redirect_uris = []
loopback_redirect_uris = true
client_lifetime = "1d"
"#
        .into(),
        ..Default::default()
    }
}

// Anonymous registration, where enabled: public loopback clients only, in
// the quarantine organization, under the anonymous profile, rate limited.
async fn anonymous_registration(server: TestServer) -> TestServer {
    let mcp = json!({"redirect_uris": ["http://127.0.0.1:33418/callback"], "token_endpoint_auth_method": "none",
                     "grant_types": ["authorization_code", "refresh_token"], "client_name": "MCP client"});
    let client: Value = {
        let response = server.register_with(None, &mcp).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    };
    assert_eq!(
        client["scope"], "mcp",
        "the anonymous profile's narrow default scope"
    );
    assert!(client.get("client_secret").is_none());
    let orgs: Value = server
        .http
        .get(server.url("/admin/v1/organizations"))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let quarantine = orgs["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "quarantine")
        .expect("quarantine organization");
    assert_eq!(client["organization_id"], quarantine["id"]);

    let mut confidential = mcp.clone();
    confidential["token_endpoint_auth_method"] = json!("client_secret_basic");
    let answer = refusal(&server, "", confidential).await;
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("only public clients"),
        "{answer}"
    );
    let mut remote = mcp.clone();
    remote["redirect_uris"] = json!(["https://attacker.example/cb"]);
    assert_eq!(
        refusal(&server, "", remote).await["error"],
        "invalid_redirect_uri"
    );

    // Three a minute per source: the two refusals above counted too.
    let response = server.register_with(None, &mcp).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));

    let trail: Value = server
        .http
        .get(server.url("/admin/v1/audit?actor=anonymous"))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(trail["entries"].as_array().unwrap().len(), 3, "{trail}");
    server
}

on_both_backends!(options = super::anonymous(); anonymous_registration);
