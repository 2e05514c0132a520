//! What the server fetches, end to end (issue 6): `jwks_uri` and
//! `sector_identifier_uri` refused at once when they name a non-global
//! address (every loopback spelling, private and link-local names, names
//! that do not resolve) without any connection; `private_key_jwt` with keys
//! from a `jwks_uri` (cached, one forced re-fetch on an unknown `kid`, rate
//! limited); `sector_identifier_uri` checked against the redirect URIs; the
//! fetcher's refusals (redirect, status, content type, size, timeout)
//! against a loopback HTTPS server allowlisted for the test; and a profile's
//! `fetch_hosts`.
//!
//! The documents come from [`HttpsServer`] on `127.0.0.1`, reached under the
//! names `keys.test` and `sector.test`, which only the server's static
//! resolver knows ([`Options::resolve`]): no outside name is ever looked up
//! and nothing but loopback is ever connected to. Client assertions are
//! signed here with `p256`, independently of Charter's JOSE code.

use charter_testkit::https::{Document, HttpsServer};
use charter_testkit::{b64, json, now, on_both_backends, random, Options, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::net::TcpListener;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const REDIRECT: &str = "https://app.example.com/cb";
const OTHER_REDIRECT: &str = "https://app.example.com/other";

fn loopback() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

/// No allowlist; a few names the resolver maps to non-global addresses.
/// Nothing here ever resolves to a global address.
fn strict() -> Options {
    Options {
        resolve: vec![
            ("keys.test".into(), loopback()),
            ("private.test".into(), vec!["10.0.0.1".parse().unwrap()]),
            (
                "metadata.test".into(),
                vec!["169.254.169.254".parse().unwrap()],
            ),
            (
                "mixed.test".into(),
                vec!["192.168.1.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            ),
        ],
        ..Default::default()
    }
}

/// Loopback allowlisted and the test certificate trusted, so that the
/// server can fetch from [`HttpsServer`] as `keys.test` and `sector.test`.
fn allowlisted() -> Options {
    Options {
        extra_toml: format!(
            r#"
[fetch]
allow_cidrs = ["127.0.0.0/8"]
root_certificates = [{cert:?}]

[policy]
version = "fetching-1"
default_profile = "open"

[policy.profiles.open]

[policy.profiles.keys_only]
fetch_hosts = ["keys.test"]

[policy.profiles.checked]
check_jwks_uri = true
"#,
            cert = HttpsServer::CERT
        ),
        resolve: vec![
            ("keys.test".into(), loopback()),
            ("sector.test".into(), loopback()),
        ],
        ..Default::default()
    }
}

/// A client's P-256 key under a chosen `kid`.
pub(crate) struct ClientKey {
    kid: &'static str,
    key: SigningKey,
}

impl ClientKey {
    pub(crate) fn new(kid: &'static str) -> Self {
        let seed = Sha256::digest(format!("{}{}", random(), random()).as_bytes());
        Self {
            kid,
            key: SigningKey::from_slice(&seed).expect("P-256 scalar"),
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))})
    }

    /// A fresh RFC 7523 client assertion for `client_id` at `issuer`,
    /// signed by this key (or by `signer`'s, under this key's `kid`).
    fn assertion_signed_by(&self, signer: &SigningKey, client_id: &str, issuer: &str) -> String {
        let header = json!({"alg": "ES256", "typ": "client-authentication+jwt", "kid": self.kid});
        let now = now();
        let claims = json!({"iss": client_id, "sub": client_id, "aud": issuer,
                            "iat": now, "exp": now + 60, "jti": random()});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = signer.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    pub(crate) fn assertion(&self, client_id: &str, issuer: &str) -> String {
        self.assertion_signed_by(&self.key, client_id, issuer)
    }
}

fn jwks(keys: &[&ClientKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

fn key_client(jwks_uri: &str) -> Value {
    json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "ES256",
        "jwks_uri": jwks_uri,
    })
}

fn web_client(redirect_uris: &[&str], sector: &str) -> Value {
    json!({"redirect_uris": redirect_uris, "sector_identifier_uri": sector})
}

async fn post_register(server: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    let response = server.register_with(Some(token), body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers `body` with the bootstrap IAT; returns the status and body.
async fn try_register(server: &TestServer, body: &Value) -> (u16, Value) {
    post_register(server, &server.iat, body).await
}

/// RFC 7592 full replacement with the client's registration access token.
async fn put(server: &TestServer, client: &Value, body: &Value) -> (u16, Value) {
    let response = server
        .http
        .put(client["registration_client_uri"].as_str().unwrap())
        .bearer_auth(client["registration_access_token"].as_str().unwrap())
        .json(body)
        .send()
        .await
        .expect("update request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn assert_invalid_metadata(status: u16, body: &Value, mentions: &[&str]) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    for word in mentions {
        assert!(
            description.contains(word),
            "{description:?} should mention {word:?}"
        );
    }
}

#[track_caller]
fn assert_invalid_client(status: u16, body: &Value, mentions: &[&str]) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    for word in mentions {
        assert!(
            description.contains(word),
            "{description:?} should mention {word:?}"
        );
    }
}

/// A client_credentials request authenticated by `assertion`.
async fn token_with(server: &TestServer, assertion: &str) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A loopback listener that must never see a connection.
struct Probe {
    listener: TcpListener,
}

impl Probe {
    async fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind an ephemeral loopback port"),
        }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("local address").port()
    }

    /// Whether a connection is waiting (polled briefly: one the server
    /// opened earlier is already in the backlog).
    async fn touched(&self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.listener.accept())
            .await
            .is_ok()
    }

    async fn assert_untouched(&self) {
        assert!(
            !self.touched().await,
            "the server connected to a URL it should have refused"
        );
    }
}

/// Every spelling of a loopback (or unspecified) address, for `port`.
fn loopback_spellings(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.0.0.1.",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "keys.localhost",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "0",
        "[::]",
        // keys.test resolves to 127.0.0.1, and nothing is allowlisted.
        "keys.test",
    ]
    .iter()
    .map(|host| format!("https://{host}:{port}/jwks"))
    .collect()
}

// Fail early: every loopback spelling, names resolving to private and
// link-local (cloud metadata) addresses, and a name that does not resolve
// are refused at registration and at update, naming the member, with
// nothing stored and no connection made.
async fn non_global_targets_are_refused_at_once(server: TestServer) -> TestServer {
    let probe = Probe::bind().await;
    let port = probe.port();
    let before = server.client_count().await;

    for url in loopback_spellings(port) {
        let (status, body) = try_register(&server, &key_client(&url)).await;
        assert_invalid_metadata(status, &body, &["jwks_uri"]);
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains("refused"),
            "{url}: {description:?} should say the address is refused"
        );
        // The sector document is fetched at registration: the real SSRF path.
        let (status, body) = try_register(&server, &web_client(&[REDIRECT], &url)).await;
        assert_invalid_metadata(status, &body, &["sector_identifier_uri", "refused"]);
    }
    // NAT64 (64:ff9b::/96) of loopback: only as jwks_uri, which registration
    // never fetches, so that a wrong answer cannot leave the machine.
    let nat64 = format!("https://[64:ff9b::7f00:1]:{port}/jwks");
    let (status, body) = try_register(&server, &key_client(&nat64)).await;
    assert_invalid_metadata(status, &body, &["jwks_uri", "refused"]);

    // Names resolving to private or link-local addresses, any one of them
    // enough; the resolver's answers are static, so no connection could
    // even be attempted to them.
    for (host, address) in [
        ("private.test", "10.0.0.1"),
        ("metadata.test", "169.254.169.254"),
        ("mixed.test", "192.168.1.1"),
    ] {
        let url = format!("https://{host}:{port}/jwks");
        let (status, body) = try_register(&server, &key_client(&url)).await;
        assert_invalid_metadata(status, &body, &["jwks_uri", host, address]);
    }
    // A name the resolver does not know.
    let url = format!("https://nowhere.test:{port}/jwks");
    let (status, body) = try_register(&server, &key_client(&url)).await;
    assert_invalid_metadata(status, &body, &["jwks_uri", "nowhere.test", "resolved"]);
    let (status, body) = try_register(&server, &web_client(&[REDIRECT], &url)).await;
    assert_invalid_metadata(status, &body, &["sector_identifier_uri", "nowhere.test"]);
    assert_eq!(server.client_count().await, before, "nothing is stored");

    // RFC 7592 update: the same check, and the client stays as it was.
    let key = ClientKey::new("k");
    let client = server
        .register(&json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks(&[&key]),
        }))
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let mut replacement = key_client(&format!("https://127.1:{port}/jwks"));
    replacement["client_id"] = json!(client_id);
    let (status, body) = put(&server, &client, &replacement).await;
    assert_invalid_metadata(status, &body, &["jwks_uri", "refused"]);
    let read = server.read_client(&client).await;
    assert!(read.get("jwks_uri").is_none(), "{read}");
    assert_eq!(read["jwks"], client["jwks"]);
    let (status, body) = token_with(&server, &key.assertion(client_id, &server.issuer)).await;
    assert_eq!(status, 200, "{body}");

    probe.assert_untouched().await;
    server
}

on_both_backends!(options = super::strict(); non_global_targets_are_refused_at_once);

// private_key_jwt with keys at a jwks_uri: fetched at first use, cached,
// fetched once more when the client rotates to a new kid, and not again
// for an unknown kid within the re-fetch interval.
async fn jwks_uri_keys_are_cached_and_refetched_once(server: TestServer) -> TestServer {
    let keys = HttpsServer::start().await;
    let (a, b, c) = (
        ClientKey::new("a"),
        ClientKey::new("b"),
        ClientKey::new("c"),
    );
    keys.serve(
        "/jwks",
        Document::json(&jwks(&[&a])).cache_control("max-age=3600"),
    );
    let jwks_uri = keys.url("keys.test", "/jwks");
    let client = server.register(&key_client(&jwks_uri)).await;
    assert_eq!(client["jwks_uri"], jwks_uri.as_str());
    assert!(client.get("client_secret").is_none(), "{client}");
    // Registration vets the URL; it does not fetch the keys.
    assert_eq!(keys.requests("/jwks"), 0);
    let id = client["client_id"].as_str().unwrap();
    let issuer = server.issuer.clone();

    let (status, body) = token_with(&server, &a.assertion(id, &issuer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests("/jwks"), 1, "fetched at first use");
    let (status, body) = token_with(&server, &a.assertion(id, &issuer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests("/jwks"), 1, "then cached");

    // A known kid whose signature does not verify: no re-fetch.
    let stranger = SigningKey::from_slice(&Sha256::digest(random().as_bytes())).unwrap();
    let (status, body) = token_with(&server, &a.assertion_signed_by(&stranger, id, &issuer)).await;
    assert_invalid_client(status, &body, &["verify"]);
    assert_eq!(keys.requests("/jwks"), 1, "a bad signature is no rotation");

    // The client rotates: kid b is unknown to the cached set.
    keys.serve(
        "/jwks",
        Document::json(&jwks(&[&a, &b])).cache_control("max-age=3600"),
    );
    let (status, body) = token_with(&server, &b.assertion(id, &issuer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests("/jwks"), 2, "exactly one re-fetch");
    let (status, body) = token_with(&server, &b.assertion(id, &issuer)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token_with(&server, &a.assertion(id, &issuer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests("/jwks"), 2, "the new set is cached");

    // A kid the client never published: refused, at most one more fetch,
    // and none for the next such assertion (rate limited).
    let (status, body) = token_with(&server, &c.assertion(id, &issuer)).await;
    assert_invalid_client(status, &body, &[]);
    let after_first = keys.requests("/jwks");
    assert!(after_first <= 3, "{after_first} fetches");
    let (status, body) = token_with(&server, &c.assertion(id, &issuer)).await;
    assert_invalid_client(status, &body, &[]);
    assert_eq!(keys.requests("/jwks"), after_first, "rate limited");
    // The published keys still work.
    let (status, body) = token_with(&server, &b.assertion(id, &issuer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests("/jwks"), after_first);
    assert_eq!(keys.total_requests(), after_first);

    keys.stop().await;
    server
}

// OIDC DCR §5: the sector document must be a JSON array listing every
// registered redirect URI, served as application/json within the cap.
async fn sector_identifier_uri_lists_the_redirect_uris(server: TestServer) -> TestServer {
    let sector = HttpsServer::start().await;
    let native = "com.example.app:/cb";
    sector.serve(
        "/s.json",
        Document::json(&json!([REDIRECT, "https://app.example.com/second", native])),
    );
    let url = sector.url("sector.test", "/s.json");
    let client = server.register(&web_client(&[REDIRECT], &url)).await;
    assert_eq!(client["sector_identifier_uri"], url.as_str());
    assert_eq!(client["redirect_uris"], json!([REDIRECT]));
    assert_eq!(sector.requests("/s.json"), 1);
    let read = server.read_client(&client).await;
    assert_eq!(read["sector_identifier_uri"], url.as_str());
    // A native client under the same rule.
    let native_client = server
        .register(&json!({
            "application_type": "native",
            "redirect_uris": [native],
            "sector_identifier_uri": url,
        }))
        .await;
    assert_eq!(native_client["sector_identifier_uri"], url.as_str());

    let before = server.client_count().await;
    let padding = "x".repeat(70 * 1024);
    for (path, document, mentions) in [
        (
            "/missing.json",
            Document::json(&json!(["https://app.example.com/second"])),
            vec![REDIRECT],
        ),
        (
            "/object.json",
            Document::json(&json!({"redirect_uris": [REDIRECT]})),
            vec!["JSON array"],
        ),
        (
            "/strings.json",
            Document::json(&json!(format!("[\"{REDIRECT}\"]"))),
            vec!["JSON array"],
        ),
        (
            "/text.json",
            Document::bytes("text/plain", json!([REDIRECT]).to_string()),
            vec!["content type", "text/plain"],
        ),
        (
            "/untyped.json",
            Document {
                content_type: None,
                ..Document::json(&json!([REDIRECT]))
            },
            vec!["content type"],
        ),
        (
            "/big.json",
            Document::json(&json!([REDIRECT, padding])),
            vec!["more than 65536 bytes"],
        ),
        (
            "/gone.json",
            Document {
                status: 404,
                ..Document::json(&json!([REDIRECT]))
            },
            vec!["404"],
        ),
    ] {
        sector.serve(path, document);
        let url = sector.url("sector.test", path);
        let (status, body) = try_register(&server, &web_client(&[REDIRECT], &url)).await;
        let mut words = vec!["sector_identifier_uri"];
        words.extend(mentions);
        assert_invalid_metadata(status, &body, &words);
        assert_eq!(sector.requests(path), 1, "{path}");
    }
    // Every redirect URI must be listed, not just one.
    let (status, body) =
        try_register(&server, &web_client(&[REDIRECT, OTHER_REDIRECT], &url)).await;
    assert_invalid_metadata(status, &body, &["sector_identifier_uri", OTHER_REDIRECT]);
    assert_eq!(server.client_count().await, before, "nothing is stored");

    // RFC 7592 update: the same check against the new redirect URIs.
    let client_id = client["client_id"].as_str().unwrap();
    let mut replacement = web_client(&[REDIRECT, OTHER_REDIRECT], &url);
    replacement["client_id"] = json!(client_id);
    let (status, body) = put(&server, &client, &replacement).await;
    assert_invalid_metadata(status, &body, &["sector_identifier_uri", OTHER_REDIRECT]);
    let mut replacement = web_client(&[REDIRECT, "https://app.example.com/second"], &url);
    replacement["client_id"] = json!(client_id);
    let (status, body) = put(&server, &client, &replacement).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["redirect_uris"],
        json!([REDIRECT, "https://app.example.com/second"])
    );

    sector.stop().await;
    server
}

// The fetcher's refusals against the allowlisted server: a redirect is not
// followed (its target is never contacted), and a wrong status, content
// type or size, or a server that never answers, fails the fetch.
async fn fetch_refusals(server: TestServer) -> TestServer {
    let keys = HttpsServer::start().await;
    let target = Probe::bind().await;
    let moved_to = format!("https://keys.test:{}/jwks", target.port());
    let key = ClientKey::new("a");
    keys.serve("/moved", Document::redirect(302, &moved_to));

    // jwks_uri: registration only vets, so it succeeds; the token request
    // then fails on the redirect.
    let client = server
        .register(&key_client(&keys.url("keys.test", "/moved")))
        .await;
    assert_eq!(keys.requests("/moved"), 0);
    let id = client["client_id"].as_str().unwrap();
    let (status, body) = token_with(&server, &key.assertion(id, &server.issuer)).await;
    assert_invalid_client(status, &body, &["jwks_uri", "redirect"]);
    assert!(
        !body.to_string().contains(&target.port().to_string()),
        "the Location is not read, let alone echoed: {body}"
    );
    assert_eq!(keys.requests("/moved"), 1);
    // The failure is remembered: the next attempt does not fetch again.
    let (status, body) = token_with(&server, &key.assertion(id, &server.issuer)).await;
    assert_invalid_client(status, &body, &["jwks_uri", "redirect"]);
    assert_eq!(keys.requests("/moved"), 1, "negative cache");

    // sector_identifier_uri is fetched at registration: refused at once.
    keys.serve("/moved-sector", Document::redirect(301, &moved_to));
    let url = keys.url("sector.test", "/moved-sector");
    let (status, body) = try_register(&server, &web_client(&[REDIRECT], &url)).await;
    assert_invalid_metadata(status, &body, &["sector_identifier_uri", "redirect"]);
    target.assert_untouched().await;

    // Other unusable jwks_uri answers.
    for (path, document, mentions) in [
        (
            "/html",
            Document::bytes("text/html", jwks(&[&key]).to_string()),
            vec!["content type"],
        ),
        (
            "/huge",
            Document::json(&json!({"keys": [key.jwk()], "pad": "x".repeat(70 * 1024)})),
            vec!["more than 65536 bytes"],
        ),
        (
            "/error",
            Document {
                status: 500,
                ..Document::json(&jwks(&[&key]))
            },
            vec!["500"],
        ),
        (
            "/not-json",
            Document::bytes("application/json", "{\"keys\": ["),
            vec!["JWK Set"],
        ),
    ] {
        keys.serve(path, document);
        let client = server
            .register(&key_client(&keys.url("keys.test", path)))
            .await;
        let id = client["client_id"].as_str().unwrap();
        let (status, body) = token_with(&server, &key.assertion(id, &server.issuer)).await;
        let mut words = vec!["jwks_uri"];
        words.extend(mentions);
        assert_invalid_client(status, &body, &words);
        assert_eq!(keys.requests(path), 1, "{path}");
    }
    // A JWK Set may also come as application/jwk-set+json.
    keys.serve(
        "/typed",
        Document::bytes("application/jwk-set+json", jwks(&[&key]).to_string()),
    );
    let client = server
        .register(&key_client(&keys.url("keys.test", "/typed")))
        .await;
    let id = client["client_id"].as_str().unwrap();
    let (status, body) = token_with(&server, &key.assertion(id, &server.issuer)).await;
    assert_eq!(status, 200, "{body}");

    // A port whose TCP handshake completes (in the kernel's backlog) but
    // that never answers: the registration fails within the timeout.
    let silent = Probe::bind().await;
    let url = format!("https://sector.test:{}/s.json", silent.port());
    let started = std::time::Instant::now();
    let (status, body) = try_register(&server, &web_client(&[REDIRECT], &url)).await;
    // The TLS handshake never completes: the connect timeout (default 2 s)
    // is the limit reached, and the one named.
    assert_invalid_metadata(
        status,
        &body,
        &["sector_identifier_uri", "did not answer within 2s"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(silent.touched().await, "the allowlisted server was tried");

    keys.stop().await;
    server
}

// A profile's fetch_hosts narrows the hosts these URLs may name, before
// any lookup or fetch.
async fn profile_fetch_hosts(server: TestServer) -> TestServer {
    let keys = HttpsServer::start().await;
    let key = ClientKey::new("a");
    keys.serve("/jwks", Document::json(&jwks(&[&key])));
    keys.serve("/s.json", Document::json(&json!([REDIRECT])));
    let iat = server.mint_iat(&json!({"profile": "keys_only"})).await;
    let before = server.client_count().await;

    let (status, body) = post_register(
        &server,
        &iat,
        &key_client(&keys.url("sector.test", "/jwks")),
    )
    .await;
    assert_invalid_metadata(status, &body, &["jwks_uri", "sector.test", "fetch_hosts"]);
    let (status, body) = post_register(
        &server,
        &iat,
        &web_client(&[REDIRECT], &keys.url("sector.test", "/s.json")),
    )
    .await;
    assert_invalid_metadata(
        status,
        &body,
        &["sector_identifier_uri", "sector.test", "fetch_hosts"],
    );
    assert_eq!(keys.total_requests(), 0, "nothing was fetched");
    assert_eq!(server.client_count().await, before);

    // The allowed host, in any case.
    for host in ["keys.test", "KEYS.test"] {
        let (status, body) =
            post_register(&server, &iat, &key_client(&keys.url(host, "/jwks"))).await;
        assert_eq!(status, 201, "{body}");
        let id = body["client_id"].as_str().unwrap();
        let (status, body) = token_with(&server, &key.assertion(id, &server.issuer)).await;
        assert_eq!(status, 200, "{body}");
    }
    // Another profile is not restricted.
    let client = server
        .register(&key_client(&keys.url("sector.test", "/jwks")))
        .await;
    assert!(client["jwks_uri"].as_str().unwrap().contains("sector.test"));

    keys.stop().await;
    server
}

// A profile with check_jwks_uri fetches the key set at registration and
// refuses one without a usable key.
async fn profile_checks_jwks_uri(server: TestServer) -> TestServer {
    let keys = HttpsServer::start().await;
    let key = ClientKey::new("a");
    keys.serve("/jwks", Document::json(&jwks(&[&key])));
    keys.serve("/empty", Document::json(&json!({"keys": []})));
    let iat = server.mint_iat(&json!({"profile": "checked"})).await;
    let before = server.client_count().await;
    for (path, mentions) in [
        ("/empty", "no key this server can use"),
        ("/missing", "404"),
    ] {
        let (status, body) =
            post_register(&server, &iat, &key_client(&keys.url("keys.test", path))).await;
        assert_invalid_metadata(status, &body, &["jwks_uri", mentions]);
    }
    assert_eq!(server.client_count().await, before, "nothing stored");
    let (status, body) =
        post_register(&server, &iat, &key_client(&keys.url("keys.test", "/jwks"))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(keys.requests("/jwks"), 1, "fetched at registration");
    // The fetcher's counters are visible to administrators.
    let stats = server.admin_get("/admin/v1/fetch/stats").await;
    assert_eq!(stats["enabled"], true);
    assert!(stats["fetched"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["errors"]["status"].as_u64().unwrap() >= 1, "{stats}");
    keys.stop().await;
    server
}

on_both_backends!(
    options = super::allowlisted();
    profile_checks_jwks_uri,
    jwks_uri_keys_are_cached_and_refetched_once,
    sector_identifier_uri_lists_the_redirect_uris,
    fetch_refusals,
    profile_fetch_hosts
);

/// [`allowlisted`] with forced re-fetches never rate-limited.
fn allowlisted_no_refetch_limit() -> Options {
    let mut options = allowlisted();
    options.extra_toml = options
        .extra_toml
        .replace("[fetch]\n", "[fetch]\nrefetch_interval = \"0s\"\n");
    options
}

// A registration or update is checked against the sector document as it
// is now, not a copy cached for its max-age (forced re-fetches, here not
// rate-limited).
async fn sector_document_changes_are_seen(server: TestServer) -> TestServer {
    let sector = HttpsServer::start().await;
    sector.serve(
        "/s.json",
        Document::json(&json!([REDIRECT])).cache_control("max-age=3600"),
    );
    let url = sector.url("sector.test", "/s.json");
    let client = server.register(&web_client(&[REDIRECT], &url)).await;
    assert_eq!(sector.requests("/s.json"), 1);

    // The client adds a redirect URI to its document, then to its
    // registration.
    sector.serve(
        "/s.json",
        Document::json(&json!([REDIRECT, OTHER_REDIRECT])).cache_control("max-age=3600"),
    );
    let mut replacement = web_client(&[REDIRECT, OTHER_REDIRECT], &url);
    replacement["client_id"] = client["client_id"].clone();
    let (status, body) = put(&server, &client, &replacement).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sector.requests("/s.json"), 2);

    // And removes one: a new registration with it is refused.
    sector.serve("/s.json", Document::json(&json!([OTHER_REDIRECT])));
    let (status, body) = try_register(&server, &web_client(&[REDIRECT], &url)).await;
    assert_invalid_metadata(status, &body, &["sector_identifier_uri", REDIRECT]);
    assert_eq!(sector.requests("/s.json"), 3);

    sector.stop().await;
    server
}

on_both_backends!(
    options = super::allowlisted_no_refetch_limit();
    sector_document_changes_are_seen
);
