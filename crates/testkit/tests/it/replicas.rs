//! Two replicas on one PostgreSQL database behind one issuer: tokens issued
//! by either verify and introspect at the other, revocation and governance
//! decisions made at one hold at the other's next request, and signing keys
//! rotate on one schedule, each new key published by both before either
//! signs with it.

use charter_testkit::{json, Backend, Options, TestServer};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn options() -> Options {
    Options {
        extra_toml: "[tokens]\nkey_rotation_interval = \"10s\"\nkey_publish_ahead = \"5s\"\naccess_token_lifetime = \"10s\"\n".into(),
        ..Default::default()
    }
}

async fn form(
    http: &reqwest::Client,
    url: &str,
    client: &Value,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(url)
        .basic_auth(
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str(),
        )
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn kids(http: &reqwest::Client, url: &str) -> HashSet<String> {
    let jwks: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    let header = charter_jose::b64url_decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn replicas_share_tokens_keys_and_decisions() {
    let Some(primary) = TestServer::start(Backend::Postgres, options()).await else {
        return;
    };
    let replica = primary.start_replica().await;
    let http = &primary.http;
    let client = primary
        .register(&json!({"grant_types": ["client_credentials"], "scope": "read"}))
        .await;
    let grant = [("grant_type", "client_credentials")];
    let token_at = |url: String| {
        let client = &client;
        async move {
            let (status, body) = form(http, &url, client, &grant).await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let active_at = |url: String, token: String| {
        let client = &client;
        async move { form(http, &url, client, &[("token", &token)]).await.1["active"] == true }
    };

    // Keys rotate on one schedule: every token, from either replica, is
    // signed by a key both replicas published before it was issued.
    let mut signing_kids = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while signing_kids.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no rotation seen: {signing_kids:?}"
        );
        let published_primary = kids(http, &primary.url("/jwks")).await;
        let published_replica = kids(http, &replica.url("/jwks")).await;
        for (name, token) in [
            ("primary", token_at(primary.url("/token")).await),
            ("replica", token_at(replica.url("/token")).await),
        ] {
            let kid = kid_of(&token);
            assert!(
                published_primary.contains(&kid) && published_replica.contains(&kid),
                "{name} signed with {kid}, not yet published by both"
            );
            assert!(active_at(primary.url("/introspect"), token.clone()).await);
            assert!(active_at(replica.url("/introspect"), token).await);
            signing_kids.insert(kid);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A revocation at one replica holds at the other.
    let token = token_at(primary.url("/token")).await;
    let (status, _) = form(http, &replica.url("/revoke"), &client, &[("token", &token)]).await;
    assert_eq!(status, 200);
    assert!(!active_at(primary.url("/introspect"), token).await);

    // An administrator's revocation at one replica holds at the other's next request.
    let id = client["client_id"].as_str().unwrap();
    let response = http
        .post(primary.url(&format!("/admin/v1/clients/{id}/revoke")))
        .bearer_auth(&primary.admin_token)
        .json(&json!({"reason": "leaked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = form(http, &replica.url("/token"), &client, &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    replica.stop().await;
    primary.stop().await;
}
