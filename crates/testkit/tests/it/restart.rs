//! A restart on the same data keeps clients, their tokens and the keys.

use charter_testkit::{json, on_both_backends, TestServer};
use serde_json::Value;

async fn survives_restart(mut server: TestServer) -> TestServer {
    let client = server
        .register(&json!({"grant_types": ["client_credentials"], "client_name": "durable"}))
        .await;
    let uri = client["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let rat = client["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks_before: Value = server.get_json(&server.url("/jwks")).await;

    server.restart().await;

    let response = server
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let read: Value = response.json().await.unwrap();
    assert_eq!(read["client_name"], "durable");
    assert_eq!(read["client_id"], client["client_id"]);
    let jwks_after: Value = server.get_json(&server.url("/jwks")).await;
    assert_eq!(
        jwks_before, jwks_after,
        "signing keys are unchanged across restarts"
    );
    // The bootstrap IAT still works: the hash key persisted too.
    server
        .register(&json!({"grant_types": ["client_credentials"]}))
        .await;
    server
}

on_both_backends!(survives_restart);
