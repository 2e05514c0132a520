//! Software statement issuers whose keys are published at a `jwks_uri`
//! (RFC 7591 §2.3, RFC 7517 §5): the JWK Set fetched through the server's
//! one fetcher at the first statement and cached per `Cache-Control`; the
//! issuer's key rotation (a statement naming a new `kid`) seen after exactly
//! one forced re-fetch; keys that cannot be had (404, nothing listening, a
//! wrong content type, a document that is not a JWK Set) refusing the
//! statement as `invalid_software_statement` naming the problem; and a
//! `jwks_uri` whose name resolves to loopback without an allowlist, which
//! the server accepts at start-up (a name is not resolved then) and the
//! fetcher refuses at use without connecting.
//!
//! The sets come from [`HttpsServer`] on `127.0.0.1`, reached as
//! `keys.test` through the server's static resolver. It is started before
//! the Charter server, whose configuration names its port. Statements are
//! signed here with `p256`, independently of Charter's JOSE code.

use charter_testkit::https::{Document, HttpsServer};
use charter_testkit::{b64, json, now, random, Backend, Options, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr};

/// Keys at `/directory/jwks`, trusted for organization `partners`.
const DIRECTORY: &str = "https://directory.example";
/// Keys at `/missing/jwks`, never served (404).
const MISSING: &str = "https://missing.example";
/// Keys on a port nothing listens on.
const DOWN: &str = "https://down.example";
/// Keys served as `text/html`.
const HTML: &str = "https://html.example";
/// Keys served as `application/json` that is not JSON.
const GARBAGE: &str = "https://garbage.example";
const REDIRECT: &str = "https://app.partners.example/cb";

fn loopback() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn issuer_toml(issuer: &str, jwks_uri: &str) -> String {
    format!(
        r#"
[[software_statements.issuers]]
issuer = "{issuer}"
organization = "partners"
profile = "partners"
algorithms = ["ES256"]
jwks_uri = "{jwks_uri}"
"#
    )
}

fn statements_toml(issuers: &str) -> String {
    format!(
        r#"
[policy]
version = "statement-keys-1"
default_profile = "default"

[policy.profiles.default]

[policy.profiles.partners]
scopes = ["partner:read"]
default_scope = "partner:read"

[software_statements]
enabled = true
registrations_per_minute_per_source = 1000
{issuers}"#
    )
}

/// Loopback allowlisted and the test certificate trusted: every issuer's
/// keys are on `keys`.
fn allowlisted(keys: &HttpsServer) -> Options {
    let issuers = [
        issuer_toml(DIRECTORY, &keys.url("keys.test", "/directory/jwks")),
        issuer_toml(MISSING, &keys.url("keys.test", "/missing/jwks")),
        issuer_toml(DOWN, &format!("https://keys.test:{}/jwks", closed_port())),
        issuer_toml(HTML, &keys.url("keys.test", "/html/jwks")),
        issuer_toml(GARBAGE, &keys.url("keys.test", "/garbage/jwks")),
    ]
    .concat();
    Options {
        extra_toml: format!(
            "\n[fetch]\nallow_cidrs = [\"127.0.0.0/8\"]\nroot_certificates = [{cert:?}]\n{}",
            statements_toml(&issuers),
            cert = HttpsServer::CERT
        ),
        resolve: vec![("keys.test".into(), loopback())],
        ..Default::default()
    }
}

/// The test certificate trusted, but no allowlist: `keys.test` resolves
/// to loopback, which the fetcher refuses.
fn not_allowlisted(keys: &HttpsServer) -> Options {
    Options {
        extra_toml: format!(
            "\n[fetch]\nroot_certificates = [{cert:?}]\n{}",
            statements_toml(&issuer_toml(
                DIRECTORY,
                &keys.url("keys.test", "/directory/jwks")
            )),
            cert = HttpsServer::CERT
        ),
        resolve: vec![("keys.test".into(), loopback())],
        ..Default::default()
    }
}

/// Starts the key server, then a Charter server configured with its port,
/// and runs `case` with both.
async fn run<F, Fut>(backend: Backend, options: fn(&HttpsServer) -> Options, case: F)
where
    F: FnOnce(TestServer, HttpsServer) -> Fut,
    Fut: std::future::Future<Output = (TestServer, HttpsServer)>,
{
    let keys = HttpsServer::start().await;
    match TestServer::start(backend, options(&keys)).await {
        Some(server) => {
            let (server, keys) = case(server, keys).await;
            server.stop().await;
            keys.stop().await;
        }
        None => keys.stop().await,
    }
}

macro_rules! on_both_backends_with_keys {
    (options = $options:expr; $($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    super::run(charter_testkit::Backend::Sqlite, $options, super::$case).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::run(charter_testkit::Backend::Postgres, $options, super::$case).await;
                }
            }
        )+
    };
}

/// An issuer's P-256 signing key under a `kid`.
struct IssuerKey {
    kid: &'static str,
    key: SigningKey,
}

impl IssuerKey {
    fn new(kid: &'static str) -> Self {
        let seed = Sha256::digest(format!("{}{}", random(), random()).as_bytes());
        Self {
            kid,
            key: SigningKey::from_slice(&seed).expect("P-256 scalar"),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))})
    }

    /// A statement from `issuer` under this key's `kid`, signed by
    /// `signer` (this key unless forging).
    fn statement_signed_by(&self, signer: &SigningKey, issuer: &str) -> String {
        sign(signer, &json!({"alg": "ES256", "kid": self.kid}), issuer)
    }

    fn statement(&self, issuer: &str) -> String {
        self.statement_signed_by(&self.key, issuer)
    }
}

fn sign(key: &SigningKey, header: &Value, issuer: &str) -> String {
    let claims = json!({
        "iss": issuer, "iat": now() - 5, "exp": now() + 300, "jti": random(),
        "software_id": "sw-keys", "client_name": "Vouched App",
        "redirect_uris": [REDIRECT],
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn set(keys: &[&IssuerKey]) -> Document {
    Document::json(&json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}))
        .cache_control("max-age=3600")
}

async fn create_partners(server: &TestServer) -> String {
    let (status, org) = server
        .admin_post("/admin/v1/organizations", json!({"name": "partners"}))
        .await;
    assert_eq!(status, 201, "{org}");
    org["id"].as_str().expect("id").to_owned()
}

/// Registers with `statement` and no token; returns the status and body.
async fn register(server: &TestServer, statement: &str) -> (u16, Value) {
    let response = server
        .register_with(None, &json!({"software_statement": statement}))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `statement` registers a client of `partners`.
async fn admitted(server: &TestServer, statement: &str, partners: &str) {
    let (status, client) = register(server, statement).await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(client["organization_id"], partners, "{client}");
    assert_eq!(client["software_id"], "sw-keys");
    assert_eq!(client["software_statement"].as_str(), Some(statement));
}

/// `statement` is refused as invalid, with a description holding every
/// one of `mentions`; nothing is stored.
async fn invalid(server: &TestServer, statement: &str, mentions: &[&str]) -> String {
    let before = server.client_count().await;
    let (status, body) = register(server, statement).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_software_statement", "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    for word in mentions {
        assert!(
            description.contains(word),
            "{description:?} should mention {word:?}"
        );
    }
    assert_eq!(
        server.client_count().await,
        before,
        "a refusal stored a client"
    );
    description.to_owned()
}

// Fetched at the first statement, then cached; the issuer rotates to a new
// kid and the next statement verifies after exactly one re-fetch; a retired
// or unpublished kid, or a forged signature, is refused without hammering
// the issuer.
async fn fetched_keys_verify_and_rotate(
    server: TestServer,
    keys: HttpsServer,
) -> (TestServer, HttpsServer) {
    let partners = create_partners(&server).await;
    let (k1, k2, k3) = (
        IssuerKey::new("k1"),
        IssuerKey::new("k2"),
        IssuerKey::new("k3"),
    );
    keys.serve("/directory/jwks", set(&[&k1]));
    assert_eq!(
        keys.requests("/directory/jwks"),
        0,
        "nothing fetched at start-up"
    );

    admitted(&server, &k1.statement(DIRECTORY), &partners).await;
    assert_eq!(keys.requests("/directory/jwks"), 1, "fetched at first use");
    admitted(&server, &k1.statement(DIRECTORY), &partners).await;
    assert_eq!(keys.requests("/directory/jwks"), 1, "then cached (max-age)");

    // A known kid whose signature does not verify: refused, no re-fetch.
    let stranger = IssuerKey::new("k1");
    invalid(
        &server,
        &k1.statement_signed_by(&stranger.key, DIRECTORY),
        &["signature"],
    )
    .await;
    assert_eq!(
        keys.requests("/directory/jwks"),
        1,
        "a bad signature is no rotation"
    );

    // The issuer rotates: k1 retired, k2 published. The cached set does not
    // know k2, so it is fetched once more, past its max-age.
    keys.serve("/directory/jwks", set(&[&k2]));
    admitted(&server, &k2.statement(DIRECTORY), &partners).await;
    assert_eq!(keys.requests("/directory/jwks"), 2, "exactly one re-fetch");
    admitted(&server, &k2.statement(DIRECTORY), &partners).await;
    // Without a kid, every key of the set that suits the algorithm is tried.
    let no_kid = sign(&k2.key, &json!({"alg": "ES256"}), DIRECTORY);
    admitted(&server, &no_kid, &partners).await;
    assert_eq!(keys.requests("/directory/jwks"), 2, "the new set is cached");

    // The retired k1 and the never-published k3: refused; the forced
    // re-fetch is rate limited (fetch.refetch_interval), so at most one
    // more fetch (only if this test took longer than the interval).
    invalid(&server, &k1.statement(DIRECTORY), &["kid 'k1'"]).await;
    let after = keys.requests("/directory/jwks");
    assert!(after <= 3, "{after} fetches");
    invalid(&server, &k3.statement(DIRECTORY), &["kid 'k3'"]).await;
    invalid(&server, &k3.statement(DIRECTORY), &["kid 'k3'"]).await;
    assert_eq!(keys.requests("/directory/jwks"), after, "rate limited");
    assert_eq!(keys.total_requests(), after, "only the directory's set");
    (server, keys)
}

// Keys that cannot be had: the statement cannot be verified, so it is
// invalid_software_statement (RFC 7591 §3.2.2), naming the fetch problem.
async fn unavailable_keys_refuse_the_statement(
    server: TestServer,
    keys: HttpsServer,
) -> (TestServer, HttpsServer) {
    create_partners(&server).await;
    let key = IssuerKey::new("k1");
    let prefix = |issuer: &str| {
        format!("software_statement: the keys of issuer '{issuer}' could not be fetched from its jwks_uri: ")
    };

    // 404: the failure is remembered (fetch.negative_ttl), so a client
    // that retries does not make the server fetch again.
    let description = invalid(&server, &key.statement(MISSING), &["404"]).await;
    assert!(description.starts_with(&prefix(MISSING)), "{description}");
    assert_eq!(keys.requests("/missing/jwks"), 1);
    invalid(&server, &key.statement(MISSING), &["404"]).await;
    assert_eq!(keys.requests("/missing/jwks"), 1, "negative cache");

    // Nothing listening.
    let description = invalid(
        &server,
        &key.statement(DOWN),
        &["could not connect to keys.test"],
    )
    .await;
    assert!(description.starts_with(&prefix(DOWN)), "{description}");

    // Not a JWK Set's content type.
    keys.serve(
        "/html/jwks",
        Document::bytes("text/html", json!({"keys": [key.jwk()]}).to_string()),
    );
    invalid(
        &server,
        &key.statement(HTML),
        &["jwks_uri", "content type text/html"],
    )
    .await;
    assert_eq!(keys.requests("/html/jwks"), 1);

    // A JSON content type but no JWK Set: fetched once more past the cache
    // (the issuer may have fixed it), then refused.
    keys.serve(
        "/garbage/jwks",
        Document::bytes("application/json", "<html>not json</html>"),
    );
    invalid(
        &server,
        &key.statement(GARBAGE),
        &["jwks_uri", "not a JSON JWK Set"],
    )
    .await;
    assert_eq!(keys.requests("/garbage/jwks"), 2);
    // Fixed, but the copy is cached and the forced re-fetch is rate limited.
    keys.serve("/garbage/jwks", set(&[&key]));
    invalid(&server, &key.statement(GARBAGE), &["not a JSON JWK Set"]).await;
    assert_eq!(keys.requests("/garbage/jwks"), 2);
    (server, keys)
}

on_both_backends_with_keys!(
    options = super::allowlisted;
    fetched_keys_verify_and_rotate,
    unavailable_keys_refuse_the_statement,
);

// A jwks_uri whose name resolves to loopback, without an allowlist: the
// server starts (configuration cannot resolve a name; only an address
// literal is refused there), and the fetcher refuses the address at use,
// before connecting. The statement is refused as invalid, naming why.
async fn loopback_jwks_uri_is_refused_at_use(
    server: TestServer,
    keys: HttpsServer,
) -> (TestServer, HttpsServer) {
    create_partners(&server).await;
    let key = IssuerKey::new("k1");
    keys.serve("/directory/jwks", set(&[&key]));
    invalid(
        &server,
        &key.statement(DIRECTORY),
        &[
            "jwks_uri",
            "keys.test resolves to 127.0.0.1, a loopback address; refused",
        ],
    )
    .await;
    assert_eq!(keys.total_requests(), 0, "never connected to");
    (server, keys)
}

on_both_backends_with_keys!(
    options = super::not_allowlisted;
    loopback_jwks_uri_is_refused_at_use,
);
