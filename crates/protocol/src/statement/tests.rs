//! Software statements case by case (RFC 7591 §2.3, §3.2.2; checklist
//! DCR-40 to DCR-44). Statements are signed here with `p256` and headers of
//! each case's choosing.

use super::*;
use charter_jose::b64url;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

const ISSUER: &str = "https://statements.example.com";
const SERVER: &str = "https://as.example.com";
const NOW: i64 = 1_800_000_000;

/// A deterministic test key: the scalar `n` repeated.
fn key(n: u8) -> SigningKey {
    SigningKey::from_slice(&[n; 32]).expect("a valid P-256 scalar")
}

fn public_jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
           "x": b64url(point.x().expect("x")), "y": b64url(point.y().expect("y"))})
}

fn sign(key: &SigningKey, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

fn es256(kid: &str) -> Value {
    json!({"alg": "ES256", "kid": kid})
}

/// Claims of a valid statement; `extra` overrides or adds members.
fn claims(extra: Value) -> Value {
    let mut claims = json!({"iss": ISSUER, "iat": NOW - 10, "exp": NOW + 300,
                            "software_id": "sw-1", "client_name": "Statement Name",
                            "redirect_uris": ["https://app.example.com/cb"]});
    for (k, v) in extra.as_object().expect("object") {
        claims[k] = v.clone();
    }
    claims
}

/// The trusted issuer's statement: signed with key 1 under kid "k1".
fn trusted(extra: Value) -> Value {
    json!(sign(&key(1), es256("k1"), claims(extra)))
}

/// The whole decision as the service makes it: parse, look the issuer up
/// (only `ISSUER` is trusted, with key 1 as "k1" and key 2 as "k2", ES256
/// only), verify.
fn decide(statement: &Value) -> Result<SoftwareStatement, Error> {
    let body = json!({ "software_statement": statement });
    let unverified = parse_software_statement(body.as_object().expect("object"))?
        .expect("a statement is present");
    if unverified.issuer() != ISSUER {
        return Err(Error::new(
            ErrorCode::UnapprovedSoftwareStatement,
            "software_statement: issuer is not trusted",
        ));
    }
    let keys = [
        PublicKey::from_jwk(&public_jwk(&key(1), "k1")).expect("key 1"),
        PublicKey::from_jwk(&public_jwk(&key(2), "k2")).expect("key 2"),
    ];
    unverified.verify(&StatementCheck {
        keys: &keys,
        algorithms: &["ES256"],
        audience: SERVER,
        now: NOW,
    })
}

const INVALID: ErrorCode = ErrorCode::InvalidSoftwareStatement;
const UNAPPROVED: ErrorCode = ErrorCode::UnapprovedSoftwareStatement;

/// Expect acceptance, or a refusal with `code` whose description contains `fragment`.
fn check(statement: Value, expected: Result<(), (ErrorCode, &str)>) {
    match (decide(&statement), expected) {
        (Ok(s), Ok(())) => assert_eq!(s.raw(), statement.as_str().expect("a string")),
        (Err(e), Err((code, fragment))) => {
            assert_eq!(e.code, code, "{statement}: {}", e.description);
            assert!(
                e.description.contains(fragment),
                "{statement}: «{}» lacks «{fragment}»",
                e.description
            );
        }
        (got, want) => panic!("{statement}: got {got:?}, want {want:?}"),
    }
}

// DCR-40: not a JWS, unsigned, symmetric, or without `iss`.
#[test]
fn malformed_statements_are_invalid() {
    let part = |v: Value| b64url(v.to_string().as_bytes());
    let none = format!(
        "{}.{}.",
        part(json!({"alg": "none"})),
        part(claims(json!({})))
    );
    let hmac = format!(
        "{}.{}.c2ln",
        part(json!({"alg": "HS256"})),
        part(claims(json!({})))
    );
    for (statement, fragment) in [
        (json!(none), "compact"),
        (json!(hmac), "compact"),
        (json!(claims(json!({})).to_string()), "compact"),
        (json!("a.b"), "compact"),
        (json!(5), "compact"),
        (json!({"iss": ISSUER}), "compact"),
        (
            json!(sign(&key(1), es256("k1"), json!({"software_id": "x"}))),
            "no \"iss\"",
        ),
        (trusted(json!({"iss": ""})), "\"iss\""),
        (trusted(json!({"iss": 7})), "\"iss\""),
    ] {
        check(statement, Err((INVALID, fragment)));
    }
}

// DCR-41: signature, key and algorithm.
#[test]
fn signatures() {
    check(trusted(json!({})), Ok(()));
    // Without `kid`, every key of the issuer is tried.
    check(
        json!(sign(&key(2), json!({"alg": "ES256"}), claims(json!({})))),
        Ok(()),
    );
    // The issuer's key id, another key's signature.
    check(
        json!(sign(&key(3), es256("k1"), claims(json!({})))),
        Err((INVALID, "signature does not verify")),
    );
    // Key 2 signed, but the header names key 1.
    check(
        json!(sign(&key(2), es256("k1"), claims(json!({})))),
        Err((INVALID, "signature does not verify")),
    );
    check(
        json!(sign(&key(1), es256("k9"), claims(json!({})))),
        Err((INVALID, "kid \"k9\"")),
    );
    // A payload changed after signing.
    let statement = trusted(json!({}));
    let parts: Vec<&str> = statement.as_str().unwrap().split('.').collect();
    let forged = claims(json!({"client_name": "Forged"}));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(forged.to_string().as_bytes()),
        parts[2]
    );
    check(json!(tampered), Err((INVALID, "signature does not verify")));
    // RS256 is a valid JWS algorithm, but not one this issuer signs with.
    let rs256 = sign(
        &key(1),
        json!({"alg": "RS256", "kid": "k1"}),
        claims(json!({})),
    );
    check(
        json!(rs256),
        Err((INVALID, "not accepted from this issuer")),
    );
}

// DCR-42: a well-formed statement from an issuer nobody configured.
#[test]
fn untrusted_issuers_are_unapproved() {
    check(
        json!(sign(
            &key(3),
            es256("k1"),
            claims(json!({"iss": "https://rogue.example"}))
        )),
        Err((UNAPPROVED, "not trusted")),
    );
}

// DCR-41: expired or malformed times, and `aud` (RFC 7519 §4.1).
#[test]
fn times_and_audience() {
    for (extra, expected) in [
        (
            json!({"exp": NOW - 2 * CLOCK_SKEW}),
            Err((INVALID, "expired")),
        ),
        (json!({"exp": NOW - CLOCK_SKEW / 2}), Ok(())),
        (json!({"exp": "tomorrow"}), Err((INVALID, "NumericDate"))),
        (json!({"exp": null}), Err((INVALID, "NumericDate"))),
        (
            json!({"nbf": NOW + 10 * CLOCK_SKEW}),
            Err((INVALID, "not valid yet")),
        ),
        (json!({"nbf": NOW + CLOCK_SKEW / 2}), Ok(())),
        (
            json!({"iat": NOW + 10 * CLOCK_SKEW}),
            Err((INVALID, "future")),
        ),
        (json!({"aud": SERVER}), Ok(())),
        (json!({"aud": ["https://other.example", SERVER]}), Ok(())),
        (
            json!({"aud": "https://other.example"}),
            Err((INVALID, "aud")),
        ),
        (json!({"aud": 5}), Err((INVALID, "aud"))),
    ] {
        check(trusted(extra), expected);
    }
    // Neither `exp` nor `iat` is required.
    let mut bare = claims(json!({}));
    bare.as_object_mut().unwrap().remove("exp");
    bare.as_object_mut().unwrap().remove("iat");
    check(json!(sign(&key(1), es256("k1"), bare)), Ok(()));
}

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

// DCR-43, DCR-44: statement values win over JSON members; the statement
// is kept exactly as sent; JWT claims and server-assigned members never
// become metadata.
#[test]
fn statement_values_take_precedence() {
    let statement = trusted(json!({"client_id": "chosen", "client_secret": "s"}));
    let verified = decide(&statement).unwrap();
    assert_eq!(verified.issuer(), ISSUER);
    assert_eq!(verified.software_id(), Some("sw-1"));
    assert_eq!(
        verified.audit_reason(),
        format!("software_statement iss=\"{ISSUER}\" software_id=\"sw-1\"")
    );
    let request = body(json!({
        "software_statement": statement,
        "client_name": "JSON Name",
        "redirect_uris": ["https://json.example.com/cb"],
        "contacts": ["ops@example.com"],
    }));
    let merged = verified.merge_over(&request);
    for member in [
        "iss",
        "iat",
        "exp",
        "client_id",
        "client_secret",
        "software_statement",
    ] {
        assert!(!merged.contains_key(member), "{member} merged");
    }
    let metadata = verified.validate_registration(&request).unwrap();
    assert_eq!(metadata.client_name.as_deref(), Some("Statement Name"));
    assert_eq!(metadata.redirect_uris, ["https://app.example.com/cb"]);
    assert_eq!(
        metadata.contacts,
        ["ops@example.com"],
        "JSON fills the rest"
    );
    assert_eq!(metadata.software_id.as_deref(), Some("sw-1"));
    assert_eq!(metadata.software_statement.as_deref(), statement.as_str());
    let echoed = serde_json::to_value(&metadata).unwrap();
    assert_eq!(echoed["software_statement"], statement);

    // The merged request is validated like any other.
    let bad = decide(&trusted(
        json!({"redirect_uris": ["http://app.example.com/cb"]}),
    ))
    .unwrap();
    let e = bad.validate_registration(&request).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRedirectUri, "{}", e.description);
}

// RFC 7592 §2.2 with a statement: the update rules read the JSON members.
#[test]
fn updates_with_a_statement() {
    let statement = trusted(json!({}));
    let verified = decide(&statement).unwrap();
    let update = verified
        .validate_update(
            &body(json!({"client_id": "abc", "software_statement": statement, "client_name": "X"})),
            "abc",
        )
        .unwrap();
    assert_eq!(
        update.metadata.client_name.as_deref(),
        Some("Statement Name")
    );
    assert_eq!(
        update.metadata.software_statement.as_deref(),
        statement.as_str()
    );
    let e = verified
        .validate_update(&body(json!({"software_statement": statement})), "abc")
        .unwrap_err();
    assert!(
        e.description.contains("client_id: required"),
        "{}",
        e.description
    );

    // A statement identical to the stored one is taken as verified, even
    // once expired; any other is not.
    let expired = trusted(json!({"exp": NOW - 3600}));
    let stored = expired.as_str().unwrap();
    let parsed = |s: &Value| parse(s).unwrap();
    assert!(parsed(&expired).into_previously_verified(stored).is_ok());
    assert!(parsed(&statement).into_previously_verified(stored).is_err());
}

// Validation without a verified statement refuses the member.
#[test]
fn unverified_statements_are_not_validated() {
    let e = validate_registration(&body(json!({"software_statement": trusted(json!({}))})))
        .unwrap_err();
    assert_eq!(e.code, UNAPPROVED);
    let e = validate_registration(&body(json!({"software_statement": "x"}))).unwrap_err();
    assert_eq!(e.code, INVALID);
}
