//! RFC 8414 and OIDC Discovery metadata, and the JWK Set.

use charter_testkit::{on_both_backends, Backend, Options, TestServer};
use serde_json::Value;

async fn get_json(server: &TestServer, url: &str) -> Value {
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{url}: {content_type}"
    );
    response.json().await.unwrap()
}

// DISC-01, DISC-02, DISC-04, DISC-07, DISC-09, DISC-10, DISC-11, DISC-17.
async fn metadata_documents(server: TestServer) -> TestServer {
    let oauth = get_json(
        &server,
        &server.url("/.well-known/oauth-authorization-server"),
    )
    .await;
    let oidc = get_json(&server, &server.url("/.well-known/openid-configuration")).await;
    for doc in [&oauth, &oidc] {
        assert_eq!(
            doc["issuer"],
            server.issuer.as_str(),
            "issuer is byte-identical"
        );
        assert_eq!(doc["registration_endpoint"], server.url("/register"));
        assert_eq!(doc["jwks_uri"], server.url("/jwks"));
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["authorization_code", "client_credentials", "refresh_token"]),
            "exactly the grants the token endpoint serves"
        );
        // DISC-12, DISC-15 (RFC 9207), DPOP-18.
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert!(doc["dpop_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a != "none" && !a.as_str().unwrap().starts_with("HS")));
        // The authorization endpoint exists: a request without a client is
        // an error page, not a 404.
        assert_eq!(doc["authorization_endpoint"], server.url("/authorize"));
        let page = server
            .http
            .get(server.url("/authorize"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 400);
        for (endpoint, path) in [
            ("token_endpoint", "/token"),
            ("introspection_endpoint", "/introspect"),
            ("revocation_endpoint", "/revoke"),
        ] {
            assert_eq!(doc[endpoint], server.url(path));
            // Each advertised endpoint exists: an empty POST is a protocol
            // error, never a 404.
            let response = server.http.post(server.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 400, "{endpoint}");
        }
        let introspection = doc["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(
            !introspection.iter().any(|m| m == "none"),
            "RFC 7662 callers hold credentials"
        );
        let methods = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(methods.iter().any(|m| m == "private_key_jwt"));
        let algs = doc["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        assert!(!algs.is_empty() && !algs.iter().any(|a| a == "none"));
        // No empty arrays (RFC 8414 §3.2).
        for (key, value) in doc.as_object().unwrap() {
            assert!(
                value.as_array().is_none_or(|a| !a.is_empty()),
                "{key} is an empty array"
            );
        }
    }
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    // OIDC Discovery §3: userinfo is served (401 without a token).
    assert_eq!(oidc["userinfo_endpoint"], server.url("/userinfo"));
    let userinfo = server
        .http
        .get(server.url("/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 401);
    assert!(oauth.get("userinfo_endpoint").is_none());
    assert!(oidc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "RS256"));
    assert_eq!(oidc["request_uri_parameter_supported"], false);

    // CORS for browser-based clients (DISC-16).
    let response = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .header("Origin", "https://agent.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    server
}

// The signing keys: ES256 and RS256, public members only.
async fn jwks(server: TestServer) -> TestServer {
    let response = server.http.get(server.url("/jwks")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"RS256"),
        "{algs:?}"
    );
    for key in keys {
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} published"
            );
        }
    }
    server
}

async fn unknown_paths_are_json_404(server: TestServer) -> TestServer {
    let response = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string());
    server
}

on_both_backends!(metadata_documents, jwks, unknown_paths_are_json_404);

// DISC-01..03: an issuer with a path. RFC 8414 inserts the well-known
// segment after the host; OIDC appends it to the issuer.
#[tokio::test]
async fn issuer_with_path() {
    let options = Options {
        issuer_path: "/tenant1".into(),
        ..Default::default()
    };
    let server = TestServer::start(Backend::Sqlite, options).await.unwrap();
    assert!(server.issuer.ends_with("/tenant1"));
    for url in [
        server.root_url("/.well-known/oauth-authorization-server/tenant1"),
        server.url("/.well-known/openid-configuration"),
        server.root_url("/.well-known/openid-configuration/tenant1"),
    ] {
        let doc = get_json(&server, &url).await;
        assert_eq!(doc["issuer"], server.issuer.as_str(), "{url}");
        assert_eq!(doc["registration_endpoint"], server.url("/register"));
    }
    // The host-root document would name another issuer: it is not served.
    let response = server
        .http
        .get(server.root_url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Registration works under the issuer path.
    let client = server
        .register(&serde_json::json!({"grant_types": ["client_credentials"]}))
        .await;
    assert!(client["registration_client_uri"]
        .as_str()
        .unwrap()
        .starts_with(&server.url("/register/")));
    let rat = client["registration_access_token"].as_str().unwrap();
    let read = server
        .http
        .get(client["registration_client_uri"].as_str().unwrap())
        .bearer_auth(rat)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    server.stop().await;
}
