//! RFC 7591 registration over HTTP: success, initial access tokens, and
//! validation errors that leave nothing stored.

use charter_testkit::{json, on_both_backends, TestServer};
use serde_json::Value;

/// Posts `body` with the bootstrap IAT, expects `status` and `error`, and
/// checks that nothing was stored.
async fn refused(server: &TestServer, body: Value, error: &str, fragment: &str) {
    let before = server.client_count().await;
    let response = server.register_with(Some(&server.iat), &body).await;
    assert_eq!(response.status(), 400, "{body}");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], error, "{body} → {answer}");
    let description = answer["error_description"].as_str().unwrap();
    // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E only.
    assert!(
        description
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
        "description outside the RFC 6749 character set: {description}"
    );
    assert!(
        description.contains(fragment),
        "{body}: «{description}» lacks «{fragment}»"
    );
    assert_eq!(
        server.client_count().await,
        before,
        "a refused request stored a client"
    );
}

// DCR-10..17: 201, every member, credentials, no-store, unknown members dropped.
async fn confidential_client(server: TestServer) -> TestServer {
    let response = server
        .register_with(
            Some(&server.iat),
            &json!({
                "redirect_uris": ["https://app.example.com/cb"],
                "client_name": "Build agent",
                "client_name#ja-Jpan-JP": "ビルド",
                "contacts": ["ops@example.com"],
                "scope": "read write",
                "x_vendor_flag": true,
                "client_id": "chosen-by-client",
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let client: Value = response.json().await.unwrap();
    let client_id = client["client_id"].as_str().unwrap();
    assert_ne!(client_id, "chosen-by-client");
    assert!(
        client_id.len() >= 22
            && client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let secret = client["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43, "secret carries at least 256 bits");
    let issued = client["client_id_issued_at"].as_i64().unwrap();
    let expires = client["client_secret_expires_at"].as_i64().unwrap();
    assert!(expires > issued, "every secret expires");
    assert!(client["registration_access_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 43));
    assert_eq!(
        client["registration_client_uri"],
        server.url(&format!("/register/{client_id}"))
    );
    // Defaults applied and echoed (DCR-15, OIDR-20).
    assert_eq!(client["grant_types"], json!(["authorization_code"]));
    assert_eq!(client["response_types"], json!(["code"]));
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(client["application_type"], "web");
    assert_eq!(client["client_name#ja-Jpan-JP"], "ビルド");
    assert_eq!(client["scope"], "read write");
    assert!(
        client.get("x_vendor_flag").is_none(),
        "unknown members are not echoed"
    );
    assert_eq!(server.client_count().await, 1);
    server
}

// DCR-21 and a public native client (RFC 8252).
async fn machine_and_public_clients(server: TestServer) -> TestServer {
    let machine = server
        .register(&json!({"grant_types": ["client_credentials"], "response_types": []}))
        .await;
    assert_eq!(machine["response_types"], json!([]));
    assert!(machine.get("redirect_uris").is_none());
    assert!(machine["client_secret"].is_string());

    let public = server
        .register(&json!({
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1/callback", "com.example.agent:/oauth"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert!(public.get("client_secret").is_none());
    assert!(public.get("client_secret_expires_at").is_none());
    assert_ne!(
        machine["client_id"], public["client_id"],
        "DCR-12: distinct identifiers"
    );
    server
}

// DCR-05: the registration endpoint demands an initial access token.
async fn initial_access_token_required(server: TestServer) -> TestServer {
    let body = json!({"grant_types": ["client_credentials"]});
    let response = server.register_with(None, &body).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer",
        "no error code without credentials"
    );

    let expired = server
        .insert_iat(Some(charter_service::now() - 1), false)
        .await;
    let revoked = server.insert_iat(None, true).await;
    for token in [
        "chi_not-a-real-token",
        expired.as_str(),
        revoked.as_str(),
        "bad token with spaces",
    ] {
        let response = server.register_with(Some(token), &body).await;
        assert_eq!(response.status(), 401, "{token}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_token");
    }
    // The registration access token of a client is no initial access token.
    let client = server.register(&body).await;
    let response = server
        .register_with(client["registration_access_token"].as_str(), &body)
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(server.client_count().await, 1);

    // A fresh, valid one works.
    let fresh = server
        .insert_iat(Some(charter_service::now() + 60), false)
        .await;
    assert_eq!(
        server.register_with(Some(&fresh), &body).await.status(),
        201
    );
    server
}

// DCR-20..34, OIDR-*: each refusal names the field and rule; nothing stored.
async fn metadata_refusals(server: TestServer) -> TestServer {
    let cb = "https://app.example.com/cb";
    refused(
        &server,
        json!({}),
        "invalid_redirect_uri",
        "redirect_uris: required",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": ["https://app.example.com/cb#x"]}),
        "invalid_redirect_uri",
        "fragment",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": ["/cb"]}),
        "invalid_redirect_uri",
        "absolute",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": ["http://app.example.com/cb"]}),
        "invalid_redirect_uri",
        "loopback",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": ["myapp:/cb"], "application_type": "native"}),
        "invalid_redirect_uri",
        "reverse domain",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": [cb], "application_type": "native"}),
        "invalid_redirect_uri",
        "native",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": [cb], "grant_types": ["password"]}),
        "invalid_client_metadata",
        "password",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": [cb], "grant_types": ["implicit"], "response_types": ["token"]}),
        "invalid_client_metadata",
        "implicit",
    )
    .await;
    refused(&server, json!({"grant_types": ["client_credentials"], "response_types": ["code"], "redirect_uris": [cb]}), "invalid_client_metadata", "requires grant type authorization_code").await;
    refused(&server, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}), "invalid_client_metadata", "token_endpoint_auth_method").await;
    refused(&server, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}), "invalid_client_metadata", "requires the client's public keys").await;
    refused(&server, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks", "jwks": {"keys": []}}), "invalid_client_metadata", "must not both be present").await;
    refused(&server, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}), "invalid_client_metadata", "jwks").await;
    refused(
        &server,
        json!({"grant_types": ["client_credentials"], "contacts": "ops@example.com"}),
        "invalid_client_metadata",
        "contacts: must be an array",
    )
    .await;
    refused(
        &server,
        json!({"grant_types": ["client_credentials"], "scope": ["read"]}),
        "invalid_client_metadata",
        "scope",
    )
    .await;
    refused(
        &server,
        json!({"grant_types": ["client_credentials"], "logo_uri": "javascript:alert(1)"}),
        "invalid_client_metadata",
        "logo_uri",
    )
    .await;
    refused(
        &server,
        json!({"redirect_uris": [cb], "sector_identifier_uri": "https://app.example.com/s.json"}),
        "invalid_client_metadata",
        "sector_identifier_uri",
    )
    .await;
    refused(
        &server,
        json!({"grant_types": ["client_credentials"], "software_statement": "not-a-jwt"}),
        "invalid_software_statement",
        "software_statement",
    )
    .await;
    refused(&server, json!({"grant_types": ["client_credentials"], "software_statement": "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"}), "unapproved_software_statement", "no software statement issuer").await;
    server
}

// Concurrent registrations are all durable and distinct (group commit path).
async fn concurrent_registrations(server: TestServer) -> TestServer {
    let body = json!({"grant_types": ["client_credentials"]});
    let requests = (0..48).map(|_| server.register(&body));
    let clients = charter_testkit::join_all(requests).await;
    let mut ids: Vec<&str> = clients
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 48);
    assert_eq!(server.client_count().await, 48);
    server
}

on_both_backends!(
    confidential_client,
    machine_and_public_clients,
    initial_access_token_required,
    metadata_refusals,
    concurrent_registrations
);

// The admin API mints initial access tokens for an organization.
async fn admin_issues_initial_access_tokens(server: TestServer) -> TestServer {
    let url = server.url("/admin/v1/organizations/default/initial-access-tokens");
    let response = server
        .http
        .post(&url)
        .bearer_auth(&server.iat)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "an IAT is not an admin token");
    let response = server
        .http
        .post(&url)
        .bearer_auth(&server.admin_token)
        .json(&json!({"expires_in": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let minted: Value = response.json().await.unwrap();
    let token = minted["initial_access_token"].as_str().unwrap();
    assert_eq!(
        server
            .register_with(Some(token), &json!({"grant_types": ["client_credentials"]}))
            .await
            .status(),
        201
    );
    let missing = server.url("/admin/v1/organizations/nope/initial-access-tokens");
    let response = server
        .http
        .post(&missing)
        .bearer_auth(&server.admin_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server
}

on_both_backends!(admin_issues_initial_access_tokens);
