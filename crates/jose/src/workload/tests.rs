use super::*;
use crate::b64url;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

const AUDIENCE: &str = "https://auth.example.com";
const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const SVID_SUB: &str = "spiffe://prod.example/ns/payments/sa/api";
const SA_SUB: &str = "system:serviceaccount:payments:api";
const CLUSTER: &str = "https://kubernetes.default.svc";

fn new_key() -> SigningKey {
    SigningKey::random(&mut rand_core::OsRng)
}

fn jwk(key: &SigningKey, kid: &str, usage: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": usage,
           "x": b64url(point.x().unwrap()), "y": b64url(point.y().unwrap())})
}

fn public(key: &SigningKey, kid: &str) -> PublicKey {
    PublicKey::from_jwk(&jwk(key, kid, "sig")).unwrap()
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

fn svid_claims(extra: Value) -> Value {
    merge(
        json!({"sub": SVID_SUB, "aud": [AUDIENCE], "iat": NOW - 10, "exp": NOW + 300}),
        extra,
    )
}

fn sa_claims(extra: Value) -> Value {
    merge(
        json!({"iss": CLUSTER, "sub": SA_SUB, "aud": [AUDIENCE], "iat": NOW - 10,
               "nbf": NOW - 10, "exp": NOW + 3600, "jti": "j-1",
               "kubernetes.io": {"namespace": "payments",
                                 "serviceaccount": {"name": "api", "uid": "uid-1"},
                                 "pod": {"name": "api-7d9", "uid": "pod-1"}}}),
        extra,
    )
}

fn merge(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// Parses and verifies `token` with `keys` at `NOW`, with a one-day cap.
fn check(token: &str, keys: &[PublicKey]) -> Result<WorkloadIdentity, WorkloadError> {
    parse_workload_token(token)?.verify(&WorkloadCheck {
        keys,
        audience: AUDIENCE,
        now: NOW,
        max_lifetime_secs: DAY,
    })
}

#[test]
fn spiffe_ids_follow_spiffe_id_section_2() {
    for ok in [
        "spiffe://prod.example/ns/payments/sa/api",
        "spiffe://a_b-c.9/x",
        "spiffe://td",
        "spiffe://td/A.b-C_9",
    ] {
        assert!(parse_spiffe_id(ok).is_ok(), "{ok}");
    }
    let id = parse_spiffe_id(SVID_SUB).unwrap();
    assert_eq!(
        (id.trust_domain, id.path),
        ("prod.example", "/ns/payments/sa/api")
    );
    for bad in [
        "SPIFFE://td/x",
        "spiffe:td/x",
        "https://td/x",
        "spiffe:///x",
        "spiffe://Td/x",
        "spiffe://td:443/x",
        "spiffe://user@td/x",
        "spiffe://td/x/",
        "spiffe://td//x",
        "spiffe://td/./x",
        "spiffe://td/../x",
        "spiffe://td/x%20y",
        "spiffe://td/x?q",
        "spiffe://td/x#f",
        "spiffe://td/x y",
    ] {
        assert!(parse_spiffe_id(bad).is_err(), "{bad}");
    }
    let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_BYTES));
    assert!(parse_spiffe_id(&long).is_err());
    assert!(valid_trust_domain("prod.example") && !valid_trust_domain("Prod.example"));
    assert!(!valid_trust_domain("") && !valid_trust_domain("td:8443"));
}

#[test]
fn service_account_subjects_are_namespace_and_name() {
    assert_eq!(parse_service_account(SA_SUB), Some(("payments", "api")));
    assert_eq!(
        parse_service_account("system:serviceaccount:kube-system:a.b-c"),
        Some(("kube-system", "a.b-c"))
    );
    for bad in [
        "system:serviceaccount:payments",
        "system:serviceaccount::api",
        "system:serviceaccount:payments:",
        "system:serviceaccount:pay.ments:api",
        "system:serviceaccount:Payments:api",
        "system:serviceaccount:payments:api:extra",
        "system:serviceaccount:-x:api",
        "system:node:worker-1",
    ] {
        assert_eq!(parse_service_account(bad), None, "{bad}");
    }
    assert!(is_workload_subject(SVID_SUB) && is_workload_subject(SA_SUB));
    assert!(!is_workload_subject("Xk2_client-id"));
}

#[test]
fn a_valid_svid_and_a_valid_service_account_token_verify() {
    let key = new_key();
    let keys = [public(&key, "k1")];
    let svid = sign(
        &key,
        &json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
        &svid_claims(json!({})),
    );
    let unverified = parse_workload_token(&svid).unwrap();
    assert_eq!(unverified.kind(), WorkloadKind::Spiffe);
    assert_eq!(unverified.trust(), "prod.example");
    assert_eq!(
        check(&svid, &keys).unwrap(),
        WorkloadIdentity {
            kind: WorkloadKind::Spiffe,
            trust: "prod.example".into(),
            subject: SVID_SUB.into(),
            service_account_uid: None,
            expires_at: NOW + 300,
        }
    );
    // An aud string, typ JOSE, no kid, no iat: all fine.
    let plain = sign(
        &key,
        &json!({"alg": "ES256", "typ": "JOSE"}),
        &svid_claims(json!({"aud": AUDIENCE, "iat": null})),
    );
    assert!(check(&plain, &keys).is_ok());

    let sa = sign(
        &key,
        &json!({"alg": "ES256", "kid": "k1"}),
        &sa_claims(json!({})),
    );
    let unverified = parse_workload_token(&sa).unwrap();
    assert_eq!(
        (unverified.kind(), unverified.trust()),
        (WorkloadKind::Kubernetes, CLUSTER)
    );
    let identity = check(&sa, &keys).unwrap();
    assert_eq!(identity.subject, SA_SUB);
    assert_eq!(identity.service_account_uid.as_deref(), Some("uid-1"));
    // Without kubernetes.io claims there is no uid to bind.
    let bare = sign(
        &key,
        &json!({"alg": "ES256", "kid": "k1"}),
        &sa_claims(json!({"kubernetes.io": null})),
    );
    assert_eq!(check(&bare, &keys).unwrap().service_account_uid, None);
}

#[test]
fn every_rule_has_its_refusal() {
    let key = new_key();
    let other = new_key();
    let keys = [public(&key, "k1")];
    let header = json!({"alg": "ES256", "kid": "k1"});
    let svid = |extra: Value| sign(&key, &header, &svid_claims(extra));
    let sa = |extra: Value| sign(&key, &header, &sa_claims(extra));
    let part = |v: Value| b64url(v.to_string().as_bytes());
    use WorkloadError::*;
    let cases: Vec<(&str, String, WorkloadError)> = vec![
        ("not a JWS", "abc".into(), Malformed),
        (
            "alg none",
            format!(
                "{}.{}.",
                part(json!({"alg": "none"})),
                part(svid_claims(json!({})))
            ),
            Malformed,
        ),
        (
            "HS256",
            format!(
                "{}.{}.c2ln",
                part(json!({"alg": "HS256"})),
                part(svid_claims(json!({})))
            ),
            Malformed,
        ),
        (
            "typ at+jwt",
            sign(
                &key,
                &json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}),
                &svid_claims(json!({})),
            ),
            Malformed,
        ),
        (
            "an embedded jwk (JWT-SVID section 2.3)",
            sign(
                &key,
                &json!({"alg": "ES256", "kid": "k1", "jwk": jwk(&key, "k1", "sig")}),
                &svid_claims(json!({})),
            ),
            Malformed,
        ),
        ("no sub", svid(json!({"sub": null})), Subject),
        (
            "trust domain only",
            svid(json!({"sub": "spiffe://prod.example"})),
            Subject,
        ),
        (
            "bad SPIFFE ID",
            svid(json!({"sub": "spiffe://prod.example/a/../b"})),
            Subject,
        ),
        ("a client id", svid(json!({"sub": "Xk2_client"})), Subject),
        (
            "service account without iss",
            sa(json!({"iss": null})),
            MissingIssuer,
        ),
        (
            "namespace disagrees with sub",
            sa(
                json!({"kubernetes.io": {"namespace": "other", "serviceaccount": {"name": "api", "uid": "u"}}}),
            ),
            Subject,
        ),
        (
            "account name disagrees with sub",
            sa(
                json!({"kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "x", "uid": "u"}}}),
            ),
            Subject,
        ),
        (
            "bad signature",
            sign(&other, &header, &svid_claims(json!({}))),
            Signature,
        ),
        (
            "unknown kid",
            sign(
                &key,
                &json!({"alg": "ES256", "kid": "k9"}),
                &svid_claims(json!({})),
            ),
            UnknownKey,
        ),
        ("no aud", svid(json!({"aud": null})), Audience),
        (
            "another aud",
            svid(json!({"aud": "https://other.example"})),
            Audience,
        ),
        (
            "two audiences",
            svid(json!({"aud": [AUDIENCE, "https://other.example"]})),
            Audience,
        ),
        ("no exp", svid(json!({"exp": null})), MissingExpiry),
        ("exp not a number", svid(json!({"exp": "soon"})), Times),
        (
            "expired",
            svid(json!({"iat": NOW - 600, "exp": NOW - 120})),
            Expired,
        ),
        (
            "a year long",
            sa(json!({"iat": NOW - 10, "exp": NOW + 365 * DAY})),
            TooLong,
        ),
        (
            "issued a year ago",
            svid(json!({"iat": NOW - 365 * DAY, "exp": NOW + 60})),
            TooLong,
        ),
        ("nbf ahead", sa(json!({"nbf": NOW + 600})), NotYetValid),
        ("iat ahead", svid(json!({"iat": NOW + 600})), NotYetValid),
    ];
    for (name, token, expected) in cases {
        assert_eq!(check(&token, &keys).map(|_| ()), Err(expected), "{name}");
    }
    // Within the clock skew, expiry and issue time are tolerated.
    assert!(check(&svid(json!({"exp": NOW - 30})), &keys).is_ok());
    assert!(check(&svid(json!({"iat": NOW + 30})), &keys).is_ok());
    // Descriptions are fixed, header-safe text.
    for e in [
        Malformed,
        Subject,
        Audience,
        Expired,
        KeysUnavailable,
        UntrustedTrustDomain,
    ] {
        assert!(e
            .description()
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"'));
    }
}

#[test]
fn spiffe_bundles_yield_their_jwt_svid_keys() {
    let key = new_key();
    let bundle = json!({
        "keys": [
            {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": ["MIIB"], "x": "AA", "y": "AA"},
            jwk(&key, "k1", "jwt-svid"),
        ],
        "spiffe_sequence": 10,
        "spiffe_refresh_hint": 300,
    });
    let (keys, problems) = spiffe_bundle_keys(&bundle);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid(), Some("k1"));
    assert!(keys[0].suits("ES256"));

    let mut no_kid = jwk(&key, "k1", "jwt-svid");
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut private = jwk(&key, "k2", "jwt-svid");
    private["d"] = json!("AAAA");
    for (name, bundle, fragment) in [
        (
            "plain sig key",
            json!({"keys": [jwk(&key, "k1", "sig")]}),
            "jwt-svid",
        ),
        ("no kid", json!({"keys": [no_kid]}), "kid"),
        ("private member", json!({"keys": [private]}), "private"),
        (
            "x509 only",
            json!({"keys": [{"use": "x509-svid", "kty": "EC"}]}),
            "no JWT-SVID key",
        ),
        ("not a set", json!([1]), "keys"),
    ] {
        let (keys, problems) = spiffe_bundle_keys(&bundle);
        assert!(keys.is_empty(), "{name}");
        assert!(
            problems.iter().any(|p| p.contains(fragment)),
            "{name}: {problems:?}"
        );
    }
}
