//! `charter serve` with no configuration at all: the README walk-through.

use crate::support::Charter;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const ADMIN_PREFIX: &str = "Admin token (shown once; also saved to ";
const IAT_PREFIX: &str = "Initial access token (organization \"default\"): ";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn jwks(http: &reqwest::Client, base: &str) -> Value {
    let (status, keys) = send(http.get(format!("{base}/jwks"))).await;
    assert_eq!(status, 200);
    assert!(
        keys["keys"].as_array().is_some_and(|keys| !keys.is_empty()),
        "{keys}"
    );
    keys
}

#[tokio::test]
async fn zero_config_first_start() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("charter-data");
    let http = reqwest::Client::new();

    // First start: nothing but an ephemeral port.
    let (mut charter, base) = Charter::serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    let port = base
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("listening on {base}"));
    assert!(
        port.parse::<u16>().is_ok_and(|p| p != 0),
        "listening on {base}"
    );
    let issuer = charter
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("Issuer: "))
        .unwrap()
        .to_owned();
    assert_eq!(
        issuer, base,
        "with no issuer configured it is the bound address"
    );
    assert!(
        charter
            .lines
            .iter()
            .any(|l| l.starts_with("Durability: SQLite")),
        "{:?}",
        charter.lines
    );

    let admin_line = charter.line(ADMIN_PREFIX);
    let (saved_to, admin_token) = admin_line
        .split_once("): ")
        .unwrap_or_else(|| panic!("admin line {admin_line:?}"));
    assert_eq!(saved_to, "./charter-data/admin-token");
    assert!(
        admin_token.starts_with("cha_") && admin_token.len() > 20,
        "{admin_token:?}"
    );
    let iat = charter.line(IAT_PREFIX);
    assert!(iat.starts_with("chi_") && iat.len() > 20, "{iat:?}");
    let admin_token = admin_token.to_owned();

    // The data directory and its secrets are private.
    assert_eq!(mode(&data), 0o700);
    let token_file = data.join("admin-token");
    assert_eq!(mode(&token_file), 0o600);
    let saved = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(saved.trim_end(), admin_token);
    assert_eq!(mode(&data.join("hash.key")), 0o600);
    assert!(data.join("charter.db").is_file());

    // Discovery: the issuer is byte-identical to the printed one.
    let (status, metadata) =
        send(http.get(format!("{base}/.well-known/oauth-authorization-server"))).await;
    assert_eq!(status, 200);
    assert_eq!(metadata["issuer"], issuer.as_str());
    let registration_endpoint = metadata["registration_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(registration_endpoint, format!("{issuer}/register"));

    // Register with the initial access token.
    let (status, client) =
        send(http.post(&registration_endpoint).bearer_auth(&iat).json(
            &json!({"redirect_uris": ["https://app.example.com/cb"], "client_name": "Agent"}),
        ))
        .await;
    assert_eq!(status, 201, "{client}");
    assert!(
        client["client_secret"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{client}"
    );
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let uri = client["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(uri, format!("{issuer}/register/{client_id}"));
    let rat = client["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Read it back with the registration access token.
    let (status, read) = send(http.get(&uri).bearer_auth(&rat)).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["client_id"], client_id.as_str());
    assert_eq!(read["client_name"], "Agent");

    // Full-replacement update; the registration access token rotates.
    let (status, updated) = send(http.put(&uri).bearer_auth(&rat).json(&json!({
        "client_id": client_id,
        "redirect_uris": ["https://app.example.com/cb2"],
        "client_name": "Agent v2",
    })))
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["client_name"], "Agent v2");
    let new_rat = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_rat, rat);

    // Delete, then the configuration endpoint answers 401.
    let response = http
        .delete(&uri)
        .bearer_auth(&new_rat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = send(http.get(&uri).bearer_auth(&new_rat)).await;
    assert_eq!(status, 401);

    let keys_before = jwks(&http, &base).await;
    let first = charter.kill();
    assert_eq!(
        first
            .stdout
            .iter()
            .filter(|l| l.starts_with(ADMIN_PREFIX))
            .count(),
        1
    );

    // Second start in the same directory: same data, no credentials printed.
    let (charter, base) = Charter::serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    assert_eq!(
        jwks(&http, &base).await,
        keys_before,
        "signing keys survive a restart"
    );
    // The saved admin token still works: mint another initial access token.
    let (status, minted) = send(
        http.post(format!(
            "{base}/admin/v1/organizations/default/initial-access-tokens"
        ))
        .bearer_auth(&admin_token)
        .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert!(
        minted["initial_access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("chi_")),
        "{minted}"
    );

    // Only after the process is gone is its output complete.
    let second = charter.kill();
    for line in &second.stdout {
        assert!(
            !line.starts_with(ADMIN_PREFIX)
                && !line.starts_with(IAT_PREFIX)
                && !line.starts_with("First start"),
            "credentials printed again on restart: {:?}",
            second.stdout
        );
        assert!(!line.contains(&admin_token), "{line}");
    }
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        saved,
        "the admin token file is not rewritten"
    );
}
