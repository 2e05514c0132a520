//! Hashes that name a key or a token: the RFC 7638 JWK thumbprint that binds
//! a DPoP key to its tokens (`jkt`, RFC 9449 §6), and the OpenID Connect
//! `at_hash` / `c_hash` claims that tie an ID Token to the access token or
//! code issued with it (OIDC Core §3.1.3.6, §3.3.2.11).
//!
//! These are pure functions of their input. They check only what they need to
//! compute a well-defined value; whether a key is acceptable for a purpose is
//! the caller's decision (see `dpop` and `client_jwks`).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::{b64url, b64url_decode};

/// Why no thumbprint could be computed. The message is safe to return to the
/// client that sent the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThumbprintError(pub String);

/// RFC 7638 §3 JWK SHA-256 thumbprint, base64url without padding.
///
/// Only the required members of the key type take part (RFC 7638 §3.2):
/// `crv`, `kty`, `x`, `y` for EC; `e`, `kty`, `n` for RSA; `crv`, `kty`, `x`
/// for OKP (RFC 8037 §2). Other members such as `kid` or `alg` are ignored,
/// so the same key always has the same thumbprint. Any other key type, or a
/// required member that is missing, not a string, or (for key material) not
/// base64url, is an error.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, ThumbprintError> {
    let fail = |m: String| Err(ThumbprintError(m));
    let Some(jwk) = jwk.as_object() else {
        return fail("the JWK is not a JSON object".into());
    };
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        Some(other) => {
            return fail(format!(
                "the JWK's kty {other:?} is not supported; use EC, RSA or OKP"
            ))
        }
        None => return fail("the JWK has no \"kty\" string".into()),
    };
    // The members are inserted in lexicographic order (RFC 7638 §3.3); a
    // `Map` keeps that order with or without serde_json's `preserve_order`.
    let mut canonical = Map::new();
    for &name in required {
        let Some(value) = jwk.get(name).and_then(Value::as_str) else {
            return fail(format!("the JWK's \"{name}\" is missing or not a string"));
        };
        let is_key_material = !matches!(name, "kty" | "crv");
        if is_key_material && b64url_decode(value).is_none() {
            return fail(format!("the JWK's \"{name}\" is not base64url"));
        }
        canonical.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    // serde_json writes no whitespace and escapes only what JSON requires,
    // which is the serialization RFC 7638 §3.3 asks for.
    let canonical = Value::Object(canonical).to_string();
    Ok(b64url(&Sha256::digest(canonical.as_bytes())))
}

/// OIDC Core §3.1.3.6 `at_hash` (and §3.3.2.11 `c_hash`): base64url of the
/// left-most half of the hash of the token's ASCII octets, where the hash is
/// the one of the ID Token's `alg`: SHA-256 for `*256`, SHA-384 for `*384`,
/// SHA-512 for `*512`.
///
/// `None` for `none`, for EdDSA (whose hash the algorithm name does not fix)
/// and for any algorithm not registered for JWS in RFC 7518 §3.1.
pub fn oidc_hash(alg: &str, token: &str) -> Option<String> {
    let digest = match alg {
        "HS256" | "RS256" | "ES256" | "PS256" => Sha256::digest(token.as_bytes()).to_vec(),
        "HS384" | "RS384" | "ES384" | "PS384" => Sha384::digest(token.as_bytes()).to_vec(),
        "HS512" | "RS512" | "ES512" | "PS512" => Sha512::digest(token.as_bytes()).to_vec(),
        _ => return None,
    };
    Some(b64url(&digest[..digest.len() / 2]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // RFC 7638 §3.1 example key; "alg" and "kid" do not take part.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_section_3_1_example() {
        let jwk = json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB",
                         "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn thumbprint_matches_the_server_key_ids() {
        // Server keys are named by the crate's own thumbprint helper; both
        // computations must agree for EC and RSA alike.
        for alg in crate::Algorithm::ALL {
            let key = crate::SigningKey::generate(alg).unwrap();
            assert_eq!(jwk_thumbprint(&key.public_jwk()).unwrap(), key.kid());
        }
    }

    #[test]
    fn okp_thumbprint_rfc8037_appendix_a_3() {
        // RFC 8037 Appendix A.3: the Ed25519 public key's thumbprint.
        let jwk = json!({"kty": "OKP", "crv": "Ed25519",
                         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn thumbprint_errors() {
        let check = |jwk: Value, fragment: &str| {
            let e = jwk_thumbprint(&jwk).unwrap_err();
            assert!(e.0.contains(fragment), "{jwk}: {e} lacks {fragment}");
        };
        check(json!("x"), "not a JSON object");
        check(json!({"n": "AQAB"}), "no \"kty\"");
        check(
            json!({"kty": "oct", "k": "AAAA"}),
            "\"oct\" is not supported",
        );
        check(json!({"kty": "RSA", "n": RFC7638_N}), "\"e\" is missing");
        check(
            json!({"kty": "RSA", "n": 1, "e": "AQAB"}),
            "\"n\" is missing or not a string",
        );
        check(json!({"kty": "EC", "crv": "P-256", "x": "AA"}), "\"y\"");
        check(
            json!({"kty": "EC", "crv": "P-256", "x": "A+", "y": "AA"}),
            "base64url",
        );
        check(json!({"kty": "OKP", "x": "AA"}), "\"crv\"");
    }

    #[test]
    fn oidc_core_appendix_a_hashes() {
        // OIDC Core Appendix A.3 (at_hash) and A.4 (c_hash), both RS256.
        assert_eq!(
            oidc_hash("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y").as_deref(),
            Some("77QmUPtjPfzWtF2AnpK9RQ")
        );
        assert_eq!(
            oidc_hash(
                "RS256",
                "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
            )
            .as_deref(),
            Some("LDktKdoQak3Pk0cnXxCltA")
        );
    }

    #[test]
    fn oidc_hash_uses_half_of_the_alg_hash() {
        let token = "an access token";
        let half = |d: &[u8]| Some(b64url(&d[..d.len() / 2]));
        let (s256, s384, s512) = (
            half(&Sha256::digest(token)),
            half(&Sha384::digest(token)),
            half(&Sha512::digest(token)),
        );
        for (alg, expected) in [
            ("ES256", &s256),
            ("PS256", &s256),
            ("HS256", &s256),
            ("RS384", &s384),
            ("ES384", &s384),
            ("PS512", &s512),
            ("ES512", &s512),
        ] {
            assert_eq!(&oidc_hash(alg, token), expected, "{alg}");
        }
        assert_eq!(oidc_hash("ES256", token).map(|h| h.len()), Some(22));
        for alg in ["none", "EdDSA", "Ed25519", "RS1", "es256", ""] {
            assert_eq!(oidc_hash(alg, token), None, "{alg}");
        }
    }
}
