//! Workload identity over HTTP (issue 6, checklist §10): registration with
//! a SPIFFE JWT-SVID or a Kubernetes service-account token instead of an
//! initial access token (the `Workload-Identity` header), every way such a
//! token is refused with nothing stored, and the token endpoint of a client
//! whose profile requires a fresh token of its workload as its client
//! assertion, next to one whose profile does not.
//!
//! Tokens are signed here with `p256` under keys this test process makes;
//! the server trusts their public halves through `extra_toml`, or fetches a
//! SPIFFE bundle from a loopback [`HttpsServer`] allowlisted for the test
//! (reached as `keys.test`, a name only the server's static resolver
//! knows).

use charter_testkit::https::{Document, HttpsServer};
use charter_testkit::{b64, json, now, on_both_backends, random, Backend, Options, TestServer};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const SVID_SUB: &str = "spiffe://prod.example/ns/payments/sa/api";
const OTHER_SVID_SUB: &str = "spiffe://prod.example/ns/payments/sa/web";
/// Trusted under profile `observed`, which does not require assertions.
const STAGING_SUB: &str = "spiffe://staging.example/ns/payments/sa/api";
const CLUSTER: &str = "https://kubernetes.default.svc";
const SA_SUB: &str = "system:serviceaccount:payments:api";
const SPIFFE_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";
const BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn new_key() -> SigningKey {
    let seed = Sha256::digest(format!("{}{}", random(), random()).as_bytes());
    SigningKey::from_slice(&seed).expect("P-256 scalar")
}

/// The trust domains' JWT-SVID signing key: made once per test process, so
/// that the server options and the tests share it.
fn spiffe_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

/// The cluster's service-account token signing key.
fn cluster_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

fn jwk(key: &SigningKey, kid: &str, usage: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": usage,
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

fn merged(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            base.as_object_mut().expect("object").remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// A JWT-SVID for `server` (aud = its issuer), valid for five minutes, as
/// SPIRE issues them; `extra` overrides claims (`null` removes one).
fn svid(server: &TestServer, extra: Value) -> String {
    let claims = json!({"sub": SVID_SUB, "aud": [server.issuer], "iat": now() - 5,
                        "exp": now() + 300});
    sign(
        spiffe_key(),
        &json!({"alg": "ES256", "kid": "svid-1", "typ": "JWT"}),
        &merged(claims, extra),
    )
}

/// A projected service-account token for `server`, valid for an hour.
fn sa_token(server: &TestServer, extra: Value) -> String {
    let claims = json!({
        "iss": CLUSTER, "sub": SA_SUB, "aud": [server.issuer],
        "iat": now() - 5, "nbf": now() - 5, "exp": now() + 3600, "jti": random(),
        "kubernetes.io": {"namespace": "payments",
                          "serviceaccount": {"name": "api", "uid": "6f0c-sa-uid"},
                          "pod": {"name": "api-7d9f", "uid": "1a2b-pod-uid"}},
    });
    sign(
        cluster_key(),
        &json!({"alg": "ES256", "kid": "k8s-1"}),
        &merged(claims, extra),
    )
}

fn options() -> Options {
    let bundle = json!({
        "keys": [jwk(spiffe_key(), "svid-1", "jwt-svid")],
        "spiffe_sequence": 1,
        "spiffe_refresh_hint": 300,
    })
    .to_string();
    let cluster = json!({"keys": [jwk(cluster_key(), "k8s-1", "sig")]}).to_string();
    Options {
        extra_toml: format!(
            r#"
[policy]
version = "t-workloads"
default_profile = "default"

[policy.profiles.default]

[policy.profiles.workloads]
require_workload_assertion = true

[policy.profiles.observed]

[workload_identity]
enabled = true

[[workload_identity.trust_sources]]
kind = "spiffe"
trust_domain = "prod.example"
organization = "platform"
profile = "workloads"
jwks = '{bundle}'

[[workload_identity.trust_sources]]
kind = "kubernetes"
issuer = "{CLUSTER}"
organization = "platform"
profile = "workloads"
jwks = '{cluster}'

[[workload_identity.trust_sources]]
kind = "spiffe"
trust_domain = "staging.example"
organization = "platform"
profile = "observed"
jwks = '{bundle}'
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

async fn reply(response: charter_testkit::reqwest::Response) -> Reply {
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

/// POST /register with the workload's token in `Workload-Identity`.
async fn register(server: &TestServer, workload: &str, body: &Value) -> Reply {
    let response = server
        .http
        .post(server.url("/register"))
        .header("Workload-Identity", workload)
        .json(body)
        .send()
        .await
        .expect("registration request");
    reply(response).await
}

async fn create_platform(server: &TestServer) -> String {
    let (status, org) = server
        .admin_post("/admin/v1/organizations", json!({"name": "platform"}))
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

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap_or_default()
}

/// A token request; `basic` is (client_id, secret) for client_secret_basic.
async fn token(server: &TestServer, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Reply {
    let mut request = server.http.post(server.url("/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    reply(request.send().await.expect("token request")).await
}

/// client_credentials with a workload's token as the client assertion.
async fn token_with(server: &TestServer, client_id: &str, kind: &str, assertion: &str) -> Reply {
    token(
        server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", kind),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn id_of(client: &Value) -> &str {
    client["client_id"].as_str().expect("client_id")
}

// A JWT-SVID and a Kubernetes service-account token each register a client
// without an initial access token: bound to the trust source's organization
// and profile, and to the workload, echoed read-only and kept across
// updates; the audit entry names the source and the subject.
async fn workloads_register_bound_clients(server: TestServer) -> TestServer {
    let platform = create_platform(&server).await;
    let body = json!({
        "client_name": "payments api",
        "grant_types": ["client_credentials"],
        // A client cannot choose what it is bound to.
        "workload_identity": {"kind": "spiffe", "subject": "spiffe://prod.example/admin"},
    });
    let answer = register(&server, &svid(&server, json!({})), &body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let client = answer.body;
    assert_eq!(client["organization_id"], platform.as_str());
    assert_eq!(
        client["workload_identity"],
        json!({"kind": "spiffe", "subject": SVID_SUB, "trust_domain": "prod.example"})
    );
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    let report = server
        .admin_get("/admin/v1/reports/clients?organization=platform")
        .await;
    assert_eq!(report["clients"][0]["profile"], "workloads", "{report}");

    let read = server.read_client(&client).await;
    assert_eq!(read["workload_identity"], client["workload_identity"]);
    // RFC 7592 update: the binding stays whatever the request says.
    let response = server
        .http
        .put(client["registration_client_uri"].as_str().unwrap())
        .bearer_auth(client["registration_access_token"].as_str().unwrap())
        .json(&json!({
            "client_id": client["client_id"],
            "client_name": "renamed",
            "grant_types": ["client_credentials"],
            "workload_identity": {"kind": "spiffe", "subject": OTHER_SVID_SUB},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["client_name"], "renamed");
    assert_eq!(updated["workload_identity"], client["workload_identity"]);

    let entries = audit_entries(&server).await;
    let registered = entries
        .iter()
        .find(|e| e["action"] == "client.register" && e["client_id"] == client["client_id"])
        .expect("registration audited");
    assert_eq!(registered["decision"], "admitted");
    assert_eq!(registered["actor"], format!("workload:{SVID_SUB}"));
    assert_eq!(registered["organization_id"], platform.as_str());
    let provenance =
        format!("workload_identity spiffe trust domain \"prod.example\" subject=\"{SVID_SUB}\"");
    assert!(
        registered["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &json!(provenance)),
        "{registered}"
    );

    // A Kubernetes projected service-account token, bound to the account's uid too.
    let answer = register(
        &server,
        &sa_token(&server, json!({})),
        &json!({"grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["organization_id"], platform.as_str());
    assert_eq!(
        answer.body["workload_identity"],
        json!({"kind": "kubernetes", "subject": SA_SUB, "issuer": CLUSTER,
               "service_account_uid": "6f0c-sa-uid"})
    );
    let entries = audit_entries(&server).await;
    let registered = entries
        .iter()
        .find(|e| e["client_id"] == answer.body["client_id"])
        .expect("registration audited");
    assert_eq!(registered["actor"], format!("workload:{SA_SUB}"));
    server
}

// Wrong audience, expired, untrusted trust domain or cluster, bad
// signature, too long-lived, malformed: 401 invalid_token like a bad
// initial access token, nothing stored and nothing audited.
async fn bad_workload_tokens_are_refused(server: TestServer) -> TestServer {
    create_platform(&server).await;
    let other = new_key();
    let cases = [
        (
            "wrong audience",
            svid(&server, json!({"aud": ["https://other.example"]})),
            "aud",
        ),
        (
            "another audience beside ours",
            svid(
                &server,
                json!({"aud": [server.issuer, "https://other.example"]}),
            ),
            "aud",
        ),
        (
            "expired",
            svid(&server, json!({"iat": now() - 900, "exp": now() - 600})),
            "expired",
        ),
        (
            "untrusted trust domain",
            svid(
                &server,
                json!({"sub": "spiffe://evil.example/ns/payments/sa/api"}),
            ),
            "trust domain is not trusted",
        ),
        (
            "bad signature",
            sign(
                &other,
                &json!({"alg": "ES256", "kid": "svid-1"}),
                &json!({"sub": SVID_SUB, "aud": server.issuer, "exp": now() + 300}),
            ),
            "signature",
        ),
        (
            "untrusted cluster",
            sa_token(&server, json!({"iss": "https://other-cluster.example"})),
            "issuer is not a Kubernetes cluster",
        ),
        (
            "a year-long token",
            sa_token(&server, json!({"exp": now() + 365 * 86_400})),
            "longer",
        ),
        ("no exp", sa_token(&server, json!({"exp": null})), "no exp"),
        (
            "unsigned",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(
                    json!({"sub": SVID_SUB, "aud": server.issuer, "exp": now() + 60})
                        .to_string()
                        .as_bytes()
                )
            ),
            "compact JWS",
        ),
    ];
    let audited = audit_entries(&server).await.len();
    for (name, token, fragment) in &cases {
        let answer = register(
            &server,
            token,
            &json!({"grant_types": ["client_credentials"]}),
        )
        .await;
        assert_eq!(answer.status, 401, "{name}: {}", answer.body);
        assert_eq!(answer.body["error"], "invalid_token", "{name}");
        assert!(
            description(&answer.body).contains(fragment),
            "{name}: {}",
            answer.body
        );
        assert!(
            answer
                .challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
            "{name}: {:?}",
            answer.challenge
        );
    }
    assert_eq!(server.client_count().await, 0, "a refusal stored a client");
    assert_eq!(
        audit_entries(&server).await.len(),
        audited,
        "refusals are not audited"
    );

    // Both credentials at once: which one binds the client?
    let response = server
        .http
        .post(server.url("/register"))
        .bearer_auth(&server.iat)
        .header("Workload-Identity", svid(&server, json!({})))
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // A verified workload that asks for a public client is refused, and the
    // refusal is audited (the workload vouched for the attempt).
    let answer = register(
        &server,
        &svid(&server, json!({})),
        &json!({"token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1:9/cb"]}),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["error"], "invalid_client_metadata");
    let last = audit_entries(&server).await.pop().expect("an entry");
    assert_eq!(
        (&last["decision"], &last["actor"]),
        (&json!("refused"), &json!(format!("workload:{SVID_SUB}")))
    );
    // The profile that requires workload assertions admits no client an
    // initial access token registers: nothing could bind it to a workload.
    let iat = server.mint_iat(&json!({"profile": "workloads"})).await;
    let response = server
        .register_with(Some(&iat), &json!({"grant_types": ["client_credentials"]}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        description(&body).contains("workload_identity: required by profile 'workloads'"),
        "{body}"
    );
    assert_eq!(server.client_count().await, 0);
    server
}

// A trust source whose organization does not exist registers nothing.
async fn missing_organization(server: TestServer) -> TestServer {
    let answer = register(&server, &svid(&server, json!({})), &json!({})).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        description(&answer.body).contains("organization"),
        "{}",
        answer.body
    );
    assert_eq!(server.client_count().await, 0);
    server
}

// Under a profile with require_workload_assertion, a bound client gets
// tokens only with a fresh token of its own workload as client assertion;
// another workload's token, an expired one, or its secret alone: 401.
async fn bound_clients_authenticate_with_their_workload(server: TestServer) -> TestServer {
    create_platform(&server).await;
    let answer = register(
        &server,
        &svid(&server, json!({})),
        &json!({"grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let client = answer.body;
    let id = id_of(&client);
    let secret = client["client_secret"].as_str().unwrap();

    // A fresh JWT-SVID, under the SPIFFE assertion type and under RFC 7523's:
    // the same SVID twice (SPIFFE agents reuse an SVID while it lives).
    let fresh = svid(&server, json!({"iat": now(), "exp": now() + 120}));
    for kind in [SPIFFE_ASSERTION, BEARER_ASSERTION] {
        let answer = token_with(&server, id, kind, &fresh).await;
        assert_eq!(answer.status, 200, "{kind}: {}", answer.body);
        assert_eq!(answer.body["token_type"], "Bearer");
    }
    // The assertion authenticates the client at introspection too.
    let access_token = token_with(&server, id, SPIFFE_ASSERTION, &fresh).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspected = server
        .http
        .post(server.url("/introspect"))
        .form(&[
            ("token", access_token.as_str()),
            ("client_id", id),
            ("client_assertion_type", SPIFFE_ASSERTION),
            ("client_assertion", fresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let introspected = reply(introspected).await;
    assert_eq!(introspected.status, 200, "{}", introspected.body);
    assert_eq!(introspected.body["active"], true, "{}", introspected.body);
    assert_eq!(introspected.body["client_id"], id);

    let refusals = [
        (
            "another workload",
            token_with(
                &server,
                id,
                SPIFFE_ASSERTION,
                &svid(&server, json!({"sub": OTHER_SVID_SUB})),
            )
            .await,
            "not from the workload this client is bound to",
        ),
        (
            "expired",
            token_with(
                &server,
                id,
                SPIFFE_ASSERTION,
                &svid(&server, json!({"iat": now() - 900, "exp": now() - 600})),
            )
            .await,
            "expired",
        ),
        (
            "wrong audience",
            token_with(
                &server,
                id,
                BEARER_ASSERTION,
                &svid(&server, json!({"aud": "https://other.example"})),
            )
            .await,
            "aud",
        ),
        (
            "the secret alone",
            token(
                &server,
                Some((id, secret)),
                &[("grant_type", "client_credentials")],
            )
            .await,
            "requires it to authenticate with its workload",
        ),
        (
            "no client_id",
            token(
                &server,
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", SPIFFE_ASSERTION),
                    ("client_assertion", fresh.as_str()),
                ],
            )
            .await,
            "client_id is required",
        ),
    ];
    for (name, answer, fragment) in &refusals {
        assert_eq!(answer.status, 401, "{name}: {}", answer.body);
        assert_eq!(answer.body["error"], "invalid_client", "{name}");
        assert!(
            description(&answer.body).contains(fragment),
            "{name}: {}",
            answer.body
        );
    }

    // A service account is bound to its uid: the same name re-created in
    // the cluster is another workload.
    let answer = register(
        &server,
        &sa_token(&server, json!({})),
        &json!({"grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let k8s = id_of(&answer.body).to_owned();
    let answer = token_with(
        &server,
        &k8s,
        BEARER_ASSERTION,
        &sa_token(&server, json!({})),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let recreated = sa_token(
        &server,
        json!({"kubernetes.io": {"namespace": "payments",
                                 "serviceaccount": {"name": "api", "uid": "new-uid"}}}),
    );
    let answer = token_with(&server, &k8s, BEARER_ASSERTION, &recreated).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    // Nor may one workload's client be used with the other's token.
    let answer = token_with(&server, &k8s, SPIFFE_ASSERTION, &fresh).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    server
}

// Under a profile that does not require workload assertions, a bound client
// keeps its registered method, and only that one; so does every other client.
async fn other_profiles_keep_their_method(server: TestServer) -> TestServer {
    create_platform(&server).await;
    let staging = svid(&server, json!({"sub": STAGING_SUB}));
    let answer = register(
        &server,
        &staging,
        &json!({"grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["workload_identity"]["subject"], STAGING_SUB);
    let id = id_of(&answer.body).to_owned();
    let secret = answer.body["client_secret"].as_str().unwrap().to_owned();
    let answer = token(
        &server,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = token_with(&server, &id, SPIFFE_ASSERTION, &staging).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        description(&answer.body).starts_with("client authentication failed"),
        "{}",
        answer.body
    );

    let plain = server
        .register(&json!({"grant_types": ["client_credentials"]}))
        .await;
    assert!(plain.get("workload_identity").is_none(), "{plain}");
    let answer = token(
        &server,
        Some((id_of(&plain), plain["client_secret"].as_str().unwrap())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    server
}

on_both_backends!(
    options = super::options();
    workloads_register_bound_clients,
    bad_workload_tokens_are_refused,
    missing_organization,
    bound_clients_authenticate_with_their_workload,
    other_profiles_keep_their_method,
);

// Off by default: a workload token is refused, not ignored.
async fn off_by_default(server: TestServer) -> TestServer {
    let answer = register(&server, &svid(&server, json!({})), &json!({})).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        description(&answer.body).contains("no workload identity"),
        "{}",
        answer.body
    );
    assert_eq!(server.client_count().await, 0);
    server
}

on_both_backends!(off_by_default);

// A trust domain's keys at its SPIFFE bundle endpoint, through the fetcher:
// cached, fetched again once when an SVID names an unknown kid (the trust
// domain rotated its keys); a source whose endpoint fails registers nothing.
async fn bundle_endpoint(backend: Backend) {
    let https = HttpsServer::start().await;
    let (old, new) = (new_key(), new_key());
    let bundle =
        |keys: Vec<Value>| Document::json(&json!({"keys": keys, "spiffe_refresh_hint": 300}));
    https.serve("/bundle.json", bundle(vec![jwk(&old, "old", "jwt-svid")]));
    let options = Options {
        extra_toml: format!(
            r#"
[fetch]
allow_cidrs = ["127.0.0.0/8"]
root_certificates = [{cert:?}]

[workload_identity]
enabled = true

[[workload_identity.trust_sources]]
kind = "spiffe"
trust_domain = "prod.example"
organization = "platform"
profile = "default"
jwks_uri = "{bundle}"

[[workload_identity.trust_sources]]
kind = "kubernetes"
issuer = "{CLUSTER}"
organization = "platform"
profile = "default"
jwks_uri = "{missing}"
"#,
            cert = HttpsServer::CERT,
            bundle = https.url("keys.test", "/bundle.json"),
            missing = https.url("keys.test", "/openid/v1/jwks"),
        ),
        resolve: vec![(
            "keys.test".into(),
            vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
        )],
        ..Default::default()
    };
    let Some(server) = TestServer::start(backend, options).await else {
        https.stop().await;
        return;
    };
    create_platform(&server).await;
    let signed = |key: &SigningKey, kid: &str| {
        let claims = json!({"sub": SVID_SUB, "aud": server.issuer, "exp": now() + 300});
        sign(key, &json!({"alg": "ES256", "kid": kid}), &claims)
    };
    let body = json!({"grant_types": ["client_credentials"]});
    for _ in 0..2 {
        let answer = register(&server, &signed(&old, "old"), &body).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    assert_eq!(https.requests("/bundle.json"), 1, "the bundle is cached");
    https.serve(
        "/bundle.json",
        bundle(vec![
            jwk(&old, "old", "jwt-svid"),
            jwk(&new, "new", "jwt-svid"),
        ]),
    );
    let answer = register(&server, &signed(&new, "new"), &body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(
        https.requests("/bundle.json"),
        2,
        "one re-fetch for the unknown kid"
    );
    // The cluster's JWK Set answers 404: its tokens cannot be verified.
    let answer = register(&server, &sa_token(&server, json!({})), &body).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        description(&answer.body).contains("could not be fetched"),
        "{}",
        answer.body
    );
    assert_eq!(server.client_count().await, 3);
    server.stop().await;
    https.stop().await;
}

#[tokio::test]
async fn bundle_endpoint_sqlite() {
    bundle_endpoint(Backend::Sqlite).await;
}

#[tokio::test]
async fn bundle_endpoint_postgres() {
    bundle_endpoint(Backend::Postgres).await;
}
