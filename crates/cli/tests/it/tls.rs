//! Native TLS: `--tls-cert` and `--tls-key` serve HTTPS with an https issuer.

use crate::support::{run, Charter};
use serde_json::Value;

const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/testdata/cert.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/testdata/key.pem");

#[tokio::test]
async fn native_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (charter, base) = Charter::serve(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            CERT,
            "--tls-key",
            KEY,
        ],
        &[],
    );
    assert!(
        base.starts_with("https://127.0.0.1:"),
        "listening on {base}"
    );
    let issuer = charter
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("Issuer: "))
        .unwrap();
    assert_eq!(issuer, base);

    // Trust the test certificate and nothing else.
    let cert = reqwest::Certificate::from_pem(&std::fs::read(CERT).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .https_only(true)
        .build()
        .unwrap();
    let response = https
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("HTTPS request with the test certificate");
    assert_eq!(response.status().as_u16(), 200);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], base.as_str());
    let registration = metadata["registration_endpoint"].as_str().unwrap();
    assert!(registration.starts_with("https://"), "{registration}");
    assert_eq!(registration, format!("{base}/register"));

    // Plain HTTP on the TLS port gets no metadata.
    let plain = base.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/.well-known/oauth-authorization-server"))
        .send()
        .await;
    assert!(
        answer.map_or(true, |r| !r.status().is_success()),
        "plain HTTP served on the TLS port"
    );
    drop(charter);

    // Half a TLS configuration is an error naming the missing key.
    let exited = run(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--tls-cert", CERT],
    );
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(
        exited.stderr.contains("server.tls.key"),
        "{}",
        exited.stderr
    );
}
