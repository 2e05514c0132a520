//! JOSE primitives Charter needs: the server's own signing keys (generation,
//! serialization, public JWK Set) and validation of JWK Sets that clients
//! register (RFC 7517, RFC 7518, RFC 7638), JWT signing and verification
//! (RFC 7515, RFC 7519) with `ring`, DPoP proof verification (RFC 9449),
//! workload identity tokens (SPIFFE JWT-SVIDs, Kubernetes service-account
//! tokens), and the hashes that name keys and tokens (RFC 7638 thumbprints,
//! OIDC `at_hash` / `c_hash`).
//!
//! This crate does no I/O and knows nothing about storage or HTTP: the caller
//! persists the PKCS#8 bytes it gets from [`SigningKey::generate`] and passes
//! them back through [`SigningKey::from_pkcs8`].

mod client_jwks;
mod dpop;
mod hashes;
mod jwt;
mod signing;
mod workload;

pub use client_jwks::{validate_client_jwks, JwksError};
pub use dpop::{
    normalize_htu, verify_dpop_proof, DpopCheck, DpopError, DpopProof, DPOP_SIGNING_ALGS,
};
pub use hashes::{jwk_thumbprint, oidc_hash, ThumbprintError};
pub use jwt::{decode, Jwt, JwtError, PublicKey, MAX_JWT_BYTES, VERIFY_ALGS};
pub use signing::{Algorithm, Error as KeyError, SigningKey};
pub use workload::{
    is_workload_subject, parse_service_account, parse_spiffe_id, parse_workload_jwt,
    parse_workload_token, spiffe_bundle_keys, valid_trust_domain, SpiffeId,
    UnverifiedWorkloadToken, WorkloadCheck, WorkloadError, WorkloadIdentity, WorkloadKind,
    MAX_SPIFFE_ID_BYTES, WORKLOAD_CLOCK_SKEW,
};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Base64url without padding (RFC 7515 §2), the encoding of every binary JWK member.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding: padding and the standard alphabet are refused.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// JWK thumbprint (RFC 7638 §3) over the required members, in lexicographic order.
pub(crate) fn thumbprint(required_members: &[(&str, &str)]) -> String {
    use sha2::{Digest, Sha256};
    let mut canonical = String::from("{");
    for (i, (name, value)) in required_members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        // Member values in the required set are base64url strings or fixed
        // names, so no JSON escaping is ever needed.
        canonical.push_str(&format!("\"{name}\":\"{value}\""));
    }
    canonical.push('}');
    b64url(&Sha256::digest(canonical.as_bytes()))
}

/// A JSON object that refuses repeated member names: parsers disagree on
/// which duplicate wins (RFC 8259 §4), so a proxy in front could check a
/// different value from the one used; RFC 7515 §5.2 forbids them in JOSE
/// headers. Used for JWT parts and for request bodies alike.
pub struct UniqueObject(pub serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueObject, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some((key, value)) = access.next_entry::<String, serde_json::Value>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "member {key:?} appears more than once"
                        )));
                    }
                    map.insert(key, value);
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}
