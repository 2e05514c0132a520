//! Software statements (RFC 7591 §2.3) over HTTP: registration with a
//! trusted issuer's statement and no initial access token, statement values
//! overriding JSON, the statement echoed unmodified, every way a statement
//! is invalid or unapproved (checklist DCR-40 to DCR-46), a token of another
//! organization, a profile that requires a statement, updates, and the
//! audit trail.
//!
//! Statements are signed here with `p256` under a key this test process
//! generates; the server trusts its public half through `extra_toml`.

use charter_testkit::{b64, json, now, on_both_backends, Options, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const ISSUER: &str = "https://statements.example.com";
/// Trusted for organization `default` under profile `strict`.
const DEFAULT_ORG_ISSUER: &str = "https://default-org.example.com";
/// Trusted for an organization that is never created.
const ORPHAN_ISSUER: &str = "https://orphan.example.com";
const STATEMENT_REDIRECT: &str = "https://app.partners.example/cb";

fn new_key() -> SigningKey {
    let seed = Sha256::digest(
        format!(
            "{}{}",
            charter_service::credentials::random_id().expect("random"),
            charter_service::credentials::random_id().expect("random")
        )
        .as_bytes(),
    );
    SigningKey::from_slice(&seed).expect("P-256 scalar")
}

/// The trusted issuers' key: made once per test process, so that the
/// server options and the tests share it.
fn issuer_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

fn public_jwk(key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
           "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y"))})
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

/// Claims of a valid statement from `ISSUER`; `extra` overrides or adds.
fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "iat": now() - 5, "exp": now() + 300, "jti": "s-1",
        "software_id": "sw-42", "software_version": "1.0",
        "client_name": "Vouched App", "redirect_uris": [STATEMENT_REDIRECT],
    });
    for (k, v) in extra.as_object().expect("object") {
        claims[k] = v.clone();
    }
    claims
}

/// A statement signed by the trusted key.
fn statement(extra: Value) -> String {
    sign(
        issuer_key(),
        &json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        &claims(extra),
    )
}

fn options() -> Options {
    let jwks = json!({"keys": [public_jwk(issuer_key())]}).to_string();
    Options {
        extra_toml: format!(
            r#"
[policy]
version = "t-statements"
default_profile = "default"

[policy.profiles.default]

[policy.profiles.partners]
scopes = ["partner:read", "partner:write"]
default_scope = "partner:read"

[policy.profiles.strict]
require_software_statement = true

[software_statements]
enabled = true
registrations_per_minute_per_source = 1000

[[software_statements.issuers]]
issuer = "{ISSUER}"
organization = "partners"
profile = "partners"
algorithms = ["ES256"]
jwks = '{jwks}'

[[software_statements.issuers]]
issuer = "{DEFAULT_ORG_ISSUER}"
organization = "default"
profile = "strict"
jwks = '{jwks}'

[[software_statements.issuers]]
issuer = "{ORPHAN_ISSUER}"
organization = "nowhere"
profile = "partners"
jwks = '{jwks}'
"#
        ),
        ..Default::default()
    }
}

struct Reply {
    status: u16,
    body: Value,
    challenge: Option<String>,
}

async fn register(server: &TestServer, token: Option<&str>, body: &Value) -> Reply {
    let response = server.register_with(token, body).await;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Reply {
        status,
        body: response.json().await.unwrap_or(Value::Null),
        challenge,
    }
}

/// A refusal: 400 with `error`; nothing stored.
async fn refused(server: &TestServer, token: Option<&str>, body: &Value, error: &str) -> Value {
    let before = server.client_count().await;
    let reply = register(server, token, body).await;
    assert_eq!(reply.status, 400, "{body}: {}", reply.body);
    assert_eq!(reply.body["error"], error, "{body}: {}", reply.body);
    assert_eq!(
        server.client_count().await,
        before,
        "a refusal stored a client"
    );
    reply.body
}

async fn create_partners(server: &TestServer) -> String {
    let (status, org) = server
        .admin_post("/admin/v1/organizations", json!({"name": "partners"}))
        .await;
    assert_eq!(status, 201, "{org}");
    org["id"].as_str().expect("id").to_owned()
}

async fn audit_entries(server: &TestServer) -> Vec<Value> {
    server.admin_get("/admin/v1/audit?limit=1000").await["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["event"].clone())
        .collect()
}

fn provenance() -> String {
    format!("software_statement iss=\"{ISSUER}\" software_id=\"sw-42\"")
}

fn names_statement(event: &Value) -> bool {
    event["reasons"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r.as_str() == Some(provenance().as_str())))
}

// DCR-43, DCR-44: a trusted statement without a token registers into the
// issuer's organization under its profile; statement values win over JSON;
// the statement is echoed unmodified on registration, read and update.
async fn statement_without_token(server: TestServer) -> TestServer {
    let partners = create_partners(&server).await;
    let raw = statement(json!({}));
    let body = json!({
        "software_statement": raw,
        "client_name": "JSON Name",
        "redirect_uris": ["https://json.example.com/cb"],
        "contacts": ["ops@partner.example"],
    });
    let reply = register(&server, None, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let client = reply.body;
    assert_eq!(client["software_statement"].as_str(), Some(raw.as_str()));
    assert_eq!(client["organization_id"], partners.as_str());
    assert_eq!(client["client_name"], "Vouched App");
    assert_eq!(client["redirect_uris"], json!([STATEMENT_REDIRECT]));
    assert_eq!(client["software_id"], "sw-42");
    assert_eq!(client["software_version"], "1.0");
    assert_eq!(client["contacts"], json!(["ops@partner.example"]));
    assert_eq!(
        client["scope"], "partner:read",
        "the partners profile's default"
    );
    assert!(client.get("iss").is_none() && client.get("jti").is_none());
    assert!(
        client["client_secret"].is_string(),
        "a vouched client may be confidential"
    );
    let report = server
        .admin_get("/admin/v1/reports/clients?organization=partners")
        .await;
    assert_eq!(report["clients"][0]["profile"], "partners", "{report}");

    let read = server.read_client(&client).await;
    assert_eq!(read["software_statement"].as_str(), Some(raw.as_str()));
    assert_eq!(read["client_name"], "Vouched App");

    // RFC 7592 update: the same statement again still wins over JSON.
    let update = |token: String, body: Value| {
        let uri = client["registration_client_uri"]
            .as_str()
            .unwrap()
            .to_owned();
        let http = server.http.clone();
        async move {
            let response = http
                .put(uri)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let mut replacement = json!({
        "client_id": client["client_id"],
        "software_statement": raw,
        "client_name": "Renamed",
        "redirect_uris": [STATEMENT_REDIRECT],
        "contacts": ["ops@partner.example"],
        "scope": "partner:read",
    });
    let rat = client["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, updated) = update(rat, replacement.clone()).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["client_name"], "Vouched App");
    assert_eq!(updated["software_statement"].as_str(), Some(raw.as_str()));
    // Dropping the statement would let JSON override it: refused.
    replacement
        .as_object_mut()
        .unwrap()
        .remove("software_statement");
    let rat = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, answer) = update(rat.clone(), replacement.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"], "invalid_client_metadata", "{answer}");
    // A newer statement from the same issuer replaces it.
    let newer = statement(json!({"client_name": "Vouched App 2", "jti": "s-2"}));
    replacement["software_statement"] = json!(newer);
    let (status, updated) = update(rat, replacement).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["client_name"], "Vouched App 2");
    assert_eq!(updated["software_statement"].as_str(), Some(newer.as_str()));

    // The audit trail names the issuer and software_id.
    let entries = audit_entries(&server).await;
    let registered = entries
        .iter()
        .find(|e| e["action"] == "client.register" && e["client_id"] == client["client_id"])
        .expect("registration audited");
    assert_eq!(registered["decision"], "admitted");
    assert_eq!(registered["actor"], format!("statement:{ISSUER}"));
    assert_eq!(registered["organization_id"], partners.as_str());
    assert!(names_statement(registered), "{registered}");
    let updates: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "client.update")
        .collect();
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert!(names_statement(updates[0]), "{}", updates[0]);
    assert_eq!(updates[1]["decision"], "refused");
    server
}

// DCR-40, DCR-41, DCR-42: invalid and unapproved statements; nothing is
// stored, and refusals nobody vouched for are not written to the audit log.
async fn invalid_statements(server: TestServer) -> TestServer {
    create_partners(&server).await;
    let other = new_key();
    let header = json!({"alg": "ES256", "kid": "k1"});
    let part = |v: Value| b64(v.to_string().as_bytes());
    let valid = statement(json!({}));
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        part(claims(json!({"client_name": "Forged"}))),
        parts[2]
    );
    let mut no_iss = claims(json!({}));
    no_iss.as_object_mut().unwrap().remove("iss");
    let cases = [
        (
            "bad signature",
            json!(sign(&other, &header, &claims(json!({})))),
            "invalid_software_statement",
            "signature",
        ),
        (
            "tampered",
            json!(tampered),
            "invalid_software_statement",
            "signature",
        ),
        (
            "expired",
            json!(statement(json!({"iat": now() - 7200, "exp": now() - 3600}))),
            "invalid_software_statement",
            "expired",
        ),
        (
            "alg none",
            json!(format!(
                "{}.{}.",
                part(json!({"alg": "none"})),
                part(claims(json!({})))
            )),
            "invalid_software_statement",
            "compact",
        ),
        (
            "plain JSON",
            json!(claims(json!({})).to_string()),
            "invalid_software_statement",
            "compact",
        ),
        (
            "not a string",
            json!(42),
            "invalid_software_statement",
            "compact",
        ),
        (
            "no iss",
            json!(sign(issuer_key(), &header, &no_iss)),
            "invalid_software_statement",
            "iss",
        ),
        (
            "untrusted issuer",
            json!(sign(
                &other,
                &header,
                &claims(json!({"iss": "https://rogue.example"}))
            )),
            "unapproved_software_statement",
            "not trusted",
        ),
    ];
    let before = audit_entries(&server).await.len();
    for (name, value, error, fragment) in &cases {
        let body = json!({"software_statement": value, "client_name": "X"});
        let answer = refused(&server, None, &body, error).await;
        let description = answer["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(fragment), "{name}: {answer}");
    }
    assert_eq!(
        audit_entries(&server).await.len(),
        before,
        "tokenless refusals are not audited"
    );
    // With a valid token the attempt is audited, refusal included.
    refused(
        &server,
        Some(&server.iat),
        &json!({"software_statement": cases[0].1, "grant_types": ["client_credentials"]}),
        "invalid_software_statement",
    )
    .await;
    let entries = audit_entries(&server).await;
    let last = entries.last().expect("an entry");
    assert_eq!(last["decision"], "refused");
    assert!(
        last["actor"].as_str().unwrap().starts_with("iat:"),
        "{last}"
    );

    // Without a token and without a statement: the bare challenge.
    let reply = register(&server, None, &json!({"client_name": "X"})).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.challenge.as_deref(), Some("Bearer"));
    server
}

// A token and a statement must agree on the organization; when they do,
// the issuer's profile decides and the token's use is counted.
async fn token_and_statement(server: TestServer) -> TestServer {
    let partners = create_partners(&server).await;
    let raw = statement(json!({}));
    let answer = refused(
        &server,
        Some(&server.iat),
        &json!({"software_statement": raw}),
        "unapproved_software_statement",
    )
    .await;
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("another organization"),
        "{answer}"
    );
    let refusal = audit_entries(&server).await.pop().expect("an entry");
    assert_eq!(refusal["decision"], "refused");
    assert!(names_statement(&refusal), "{refusal}");

    let (status, minted) = server
        .admin_post(
            "/admin/v1/organizations/partners/initial-access-tokens",
            json!({"max_uses": 1}),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let iat = minted["initial_access_token"].as_str().unwrap();
    let body = json!({"software_statement": raw, "client_name": "JSON Name"});
    let reply = register(&server, Some(iat), &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["organization_id"], partners.as_str());
    assert_eq!(reply.body["client_name"], "Vouched App");
    assert_eq!(reply.body["scope"], "partner:read", "the issuer's profile");
    let admitted = audit_entries(&server).await.pop().expect("an entry");
    assert!(admitted["actor"].as_str().unwrap().starts_with("iat:"));
    assert!(names_statement(&admitted), "{admitted}");
    // The token's single use is spent.
    let reply = register(&server, Some(iat), &body).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    server
}

// DCR-46: a profile that requires a statement refuses a request without one.
async fn profile_requires_statement(server: TestServer) -> TestServer {
    let strict = server.mint_iat(&json!({"profile": "strict"})).await;
    let answer = refused(
        &server,
        Some(&strict),
        &json!({"grant_types": ["client_credentials"]}),
        "invalid_client_metadata",
    )
    .await;
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("software_statement: required by profile 'strict'"),
        "{answer}"
    );
    let raw = statement(json!({"iss": DEFAULT_ORG_ISSUER}));
    let reply = register(&server, Some(&strict), &json!({"software_statement": raw})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.body["software_statement"].as_str(),
        Some(raw.as_str())
    );
    server
}

// An issuer trusted for an organization that does not exist is refused plainly.
async fn unknown_organization(server: TestServer) -> TestServer {
    let answer = refused(
        &server,
        None,
        &json!({"software_statement": statement(json!({"iss": ORPHAN_ISSUER}))}),
        "unapproved_software_statement",
    )
    .await;
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("'nowhere', which does not exist"),
        "{answer}"
    );
    // The partners organization does not exist here either.
    refused(
        &server,
        None,
        &json!({"software_statement": statement(json!({}))}),
        "unapproved_software_statement",
    )
    .await;
    server
}

on_both_backends!(
    options = super::options();
    statement_without_token,
    invalid_statements,
    token_and_statement,
    profile_requires_statement,
    unknown_organization,
);
