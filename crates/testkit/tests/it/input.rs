//! Hostile and malformed request bodies: size, content type, shape.

use charter_testkit::{on_both_backends, TestServer};
use serde_json::Value;

async fn post_raw(server: &TestServer, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/register"))
        .bearer_auth(&server.iat)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn bad_bodies(server: TestServer) -> TestServer {
    // Over 64 KiB → 413 with a JSON error.
    let big = format!("{{\"client_name\":\"{}\"}}", "a".repeat(70 * 1024));
    let (status, body) = post_raw(&server, "application/json", big.into_bytes()).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "invalid_request");

    // Wrong content type, form encoding, missing type → 400 JSON.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let (status, body) = post_raw(
            &server,
            content_type,
            b"{\"grant_types\":[\"client_credentials\"]}".to_vec(),
        )
        .await;
        assert_eq!(status, 400, "{content_type}");
        assert_eq!(body["error"], "invalid_request");
    }
    let (status, _) = post_raw(
        &server,
        "application/json; charset=utf-8",
        b"{\"grant_types\":[\"client_credentials\"]}".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "charset parameter is fine");

    // Not JSON, not an object, deep nesting, huge arrays.
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
    let huge = format!("{{\"contacts\":[{}]}}", vec!["\"a\""; 5000].join(","));
    for bad in [
        "{not json",
        "[]",
        "\"string\"",
        deep.as_str(),
        huge.as_str(),
    ] {
        let (status, body) = post_raw(&server, "application/json", bad.as_bytes().to_vec()).await;
        assert_eq!(status, 400, "{bad:.40}");
        assert!(body["error"].is_string() && body["error_description"].is_string());
    }
    assert_eq!(
        server.client_count().await,
        1,
        "only the charset request stored a client"
    );
    server
}

// The credential is checked before the body is read: an anonymous caller
// gets the RFC 6750 challenge, never a parse error.
async fn authentication_before_parsing(server: TestServer) -> TestServer {
    let response = server
        .http
        .post(server.url("/register"))
        .header("content-type", "text/plain")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert!(
        response.text().await.unwrap().is_empty(),
        "no error information without credentials (RFC 6750 section 3.1)"
    );
    let response = server
        .http
        .post(server.url("/register"))
        .bearer_auth("chi_wrong")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    server
}

// RFC 8259 §4: a repeated member name is refused, not resolved silently.
async fn duplicate_members(server: TestServer) -> TestServer {
    let body =
        br#"{"grant_types":["client_credentials"],"client_name":"a","client_name":"b"}"#.to_vec();
    let (status, answer) = post_raw(&server, "application/json", body).await;
    assert_eq!(status, 400);
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{answer}"
    );
    assert_eq!(server.client_count().await, 0);
    server
}

// The configuration endpoint answers 401 for a client_id it cannot decode.
async fn undecodable_client_id(server: TestServer) -> TestServer {
    let response = server
        .http
        .get(server.url("/register/%FF%FE"))
        .bearer_auth("chr_x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    server
}

on_both_backends!(
    bad_bodies,
    authentication_before_parsing,
    duplicate_members,
    undecodable_client_id
);
