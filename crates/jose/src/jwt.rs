//! JSON Web Tokens in JWS compact serialization (RFC 7519, RFC 7515 §7.1):
//! strict parsing, and signature verification with a public JWK.
//!
//! Signatures are computed and checked by `ring`; this module only frames
//! them. Parsing is strict on purpose: exactly three base64url parts without
//! padding, a JSON object header and payload without repeated members, and
//! an algorithm from a closed list. `none` and every HMAC algorithm are
//! refused outright, so no key confusion can arise (RFC 8725 §2.1, §3.1).

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};

use crate::{b64url_decode, UniqueObject};

/// The longest token accepted; a client assertion or access token is far shorter.
pub const MAX_JWT_BYTES: usize = 8 * 1024;

/// Signature algorithms accepted on tokens others sign (RFC 7518 §3.1).
pub const VERIFY_ALGS: [&str; 3] = ["ES256", "PS256", "RS256"];

/// Why a JWT was refused. The message is safe to return to the presenter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwtError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, JwtError> {
    Err(JwtError(message.into()))
}

/// A parsed, not yet verified JWS. Nothing in it may be trusted until
/// [`PublicKey::verify`] (or the server key's `verify`) succeeds.
#[derive(Debug, Clone)]
pub struct Jwt {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Parses a compact JWS whose payload is a JSON object (a JWT).
pub fn decode(token: &str) -> Result<Jwt, JwtError> {
    decode_with_algs(token, &VERIFY_ALGS)
}

/// [`decode`] with a caller's own closed list of algorithms, for a profile
/// such as DPoP (RFC 9449) that accepts algorithms [`PublicKey`] does not
/// handle. Every other rule is the same.
pub(crate) fn decode_with_algs(token: &str, algs: &[&str]) -> Result<Jwt, JwtError> {
    if token.len() > MAX_JWT_BYTES {
        return err(format!("the JWT exceeds {MAX_JWT_BYTES} bytes"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return err("not a JWS in compact serialization (three base64url parts separated by '.')");
    };
    let header: Map<String, Value> = json_object(header, "header")?;
    let claims: Map<String, Value> = json_object(payload, "payload")?;
    let Some(signature) = b64url_decode(signature) else {
        return err("the signature is not base64url without padding");
    };
    match header.get("alg").and_then(Value::as_str) {
        Some(alg) if algs.contains(&alg) => {}
        Some(alg) => {
            return err(format!(
                "alg {alg:?} is not accepted; use one of {}",
                algs.join(", ")
            ))
        }
        None => return err("the header has no \"alg\""),
    }
    // RFC 7515 §4.1.11: a critical extension we do not understand must be refused.
    if header.contains_key("crit") {
        return err("the header carries \"crit\" extensions, none of which are supported");
    }
    Ok(Jwt {
        header,
        claims,
        signing_input: token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1]
            .to_owned(),
        signature,
    })
}

fn json_object(part: &str, name: &str) -> Result<Map<String, Value>, JwtError> {
    let Some(bytes) = b64url_decode(part) else {
        return err(format!("the {name} is not base64url without padding"));
    };
    match serde_json::from_slice::<UniqueObject>(&bytes) {
        Ok(UniqueObject(map)) => Ok(map),
        Err(_) => err(format!(
            "the {name} is not a JSON object without repeated members"
        )),
    }
}

impl Jwt {
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    pub fn into_claims(self) -> Map<String, Value> {
        self.claims
    }

    /// The header's `alg`; always one of the algorithms the token was decoded with.
    pub fn alg(&self) -> &str {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    /// A string claim.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim (RFC 7519 §2), in whole seconds.
    pub fn claim_time(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
    }

    pub(crate) fn verify_raw(
        &self,
        algorithm: &'static dyn VerificationAlgorithm,
        public_key: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(algorithm, public_key)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .is_ok()
    }
}

/// A public key from a JWK, for verifying tokens that others sign.
#[derive(Debug, Clone)]
pub struct PublicKey {
    kind: KeyKind,
    /// `kid` of the JWK, if any.
    kid: Option<String>,
    /// The JWK's `alg`, if it names one: the key is then usable with it only.
    alg: Option<String>,
}

#[derive(Debug, Clone)]
enum KeyKind {
    /// Uncompressed P-256 point (0x04 || x || y).
    P256(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    /// Reads a public signature key: EC P-256 or RSA (at least 2048 bits).
    pub fn from_jwk(jwk: &Value) -> Result<Self, JwtError> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, JwtError> {
            member(name).and_then(b64url_decode).ok_or_else(|| {
                JwtError(format!("the JWK's \"{name}\" is missing or not base64url"))
            })
        };
        if member("use").is_some_and(|u| u != "sig") {
            return err("the JWK is not a signature key (\"use\" is not \"sig\")");
        }
        let kind = match member("kty") {
            Some("EC") => {
                if member("crv") != Some("P-256") {
                    return err("only EC keys on curve P-256 are accepted");
                }
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return err("a P-256 key's x and y must be 32 bytes each");
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyKind::P256(point)
            }
            Some("RSA") => {
                let n = bytes("n")?;
                let bits = (n.len() * 8)
                    .saturating_sub(n.first().map_or(8, |b| b.leading_zeros() as usize));
                if bits < 2048 {
                    return err("RSA keys must be at least 2048 bits");
                }
                KeyKind::Rsa { n, e: bytes("e")? }
            }
            _ => return err("only EC (P-256) and RSA signature keys are accepted"),
        };
        Ok(Self {
            kind,
            kid: member("kid").map(str::to_owned),
            alg: member("alg").map(str::to_owned),
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key can verify signatures made with `alg`.
    pub fn suits(&self, alg: &str) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg) {
            return false;
        }
        matches!(
            (&self.kind, alg),
            (KeyKind::P256(_), "ES256") | (KeyKind::Rsa { .. }, "RS256" | "PS256")
        )
    }

    /// Verifies the token's signature with this key under the token's `alg`.
    pub fn verify(&self, jwt: &Jwt) -> Result<(), JwtError> {
        let alg = jwt.alg();
        if !self.suits(alg) {
            return err(format!("the key cannot verify {alg} signatures"));
        }
        let valid = match &self.kind {
            KeyKind::P256(point) => jwt.verify_raw(&signature::ECDSA_P256_SHA256_FIXED, point),
            KeyKind::Rsa { n, e } => {
                let params: &'static signature::RsaParameters = match alg {
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA256,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, jwt.signing_input.as_bytes(), &jwt.signature)
                    .is_ok()
            }
        };
        if valid {
            Ok(())
        } else {
            err("the signature does not verify")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{b64url, Algorithm, SigningKey};
    use serde_json::json;

    #[test]
    fn server_tokens_verify_with_their_published_key_only() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let token = key
                .sign_jwt("at+jwt", &json!({"sub": "c1", "exp": 10}))
                .unwrap();
            let jwt = decode(&token).unwrap();
            assert_eq!(jwt.typ(), Some("at+jwt"));
            assert_eq!(jwt.kid(), Some(key.kid()));
            assert_eq!(jwt.alg(), alg.as_str());
            assert!(key.verify(&jwt));
            PublicKey::from_jwk(&key.public_jwk())
                .unwrap()
                .verify(&jwt)
                .unwrap();
            let other = SigningKey::generate(alg).unwrap();
            assert!(!other.verify(&jwt));
            assert!(PublicKey::from_jwk(&other.public_jwk())
                .unwrap()
                .verify(&jwt)
                .is_err());
        }
    }

    #[test]
    fn tampered_payloads_fail() {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let token = key.sign_jwt("at+jwt", &json!({"sub": "a"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64url(br#"{"sub":"b"}"#), parts[2]);
        assert!(!key.verify(&decode(&forged).unwrap()));
    }

    #[test]
    fn none_hmac_and_malformed_tokens_are_refused() {
        let part = |v: Value| b64url(v.to_string().as_bytes());
        let claims = part(json!({"sub": "a"}));
        for alg in ["none", "HS256", "ES512"] {
            let token = format!("{}.{claims}.", part(json!({"alg": alg})));
            assert!(decode(&token).is_err(), "{alg}");
        }
        let header = part(json!({"alg": "ES256"}));
        for bad in [
            format!("{header}.{claims}"),
            format!("{header}.{claims}.c2ln.extra"),
            format!("{header}=.{claims}.c2ln"),
            format!("{header}.{}.c2ln", b64url(b"[1]")),
            format!("{header}.{}.c2ln", b64url(br#"{"sub":"a","sub":"b"}"#)),
            format!(
                "{}.{claims}.c2ln",
                part(json!({"alg": "ES256", "crit": ["x"]}))
            ),
        ] {
            assert!(decode(&bad).is_err(), "{bad}");
        }
        assert!(decode(&format!("{header}.{claims}.c2ln")).is_ok());
    }

    #[test]
    fn keys_suit_only_their_algorithms() {
        let ec = PublicKey::from_jwk(&SigningKey::generate(Algorithm::Es256).unwrap().public_jwk())
            .unwrap();
        assert!(ec.suits("ES256") && !ec.suits("RS256"));
        let rsa =
            PublicKey::from_jwk(&SigningKey::generate(Algorithm::Rs256).unwrap().public_jwk())
                .unwrap();
        // The published JWK names RS256, so it is not usable for PS256.
        assert!(rsa.suits("RS256") && !rsa.suits("PS256") && !rsa.suits("ES256"));
        assert!(PublicKey::from_jwk(&json!({"kty": "oct", "k": "AAAA"})).is_err());
        assert!(PublicKey::from_jwk(&json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})).is_err());
        // An empty modulus is refused, never an arithmetic underflow.
        let empty = json!({"kty": "RSA", "n": "", "e": "AQAB"});
        assert!(PublicKey::from_jwk(&empty).is_err());
        assert!(crate::validate_client_jwks(&json!({"keys": [empty]})).is_err());
    }
}
