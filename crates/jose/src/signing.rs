//! The server's signing keys: ES256 (P-256) and RS256 (RSA 2048) are generated
//! on first start. Keys are identified by their RFC 7638 thumbprint so that a
//! `kid` can never collide across algorithms or restarts.

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::fmt;

use crate::{b64url, thumbprint};

/// Signature algorithms of the server's own keys (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Es256,
    Rs256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Es256, Algorithm::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Algorithm::Es256),
            "RS256" => Some(Algorithm::Rs256),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stored {alg} key is not valid PKCS#8: {detail}")]
    InvalidKey { alg: &'static str, detail: String },
    #[error("key generation failed: {0}")]
    Generation(String),
    #[error("signing failed")]
    Signing,
}

enum Material {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::RsaPrivateKey>),
}

/// The same key loaded into `ring`, which signs and verifies on the hot
/// path: the RustCrypto types above generate and serialize keys, `ring`'s
/// assembly signs several times faster.
enum Signer {
    Es256(ring::signature::EcdsaKeyPair),
    Rs256(ring::signature::RsaKeyPair),
}

/// A private signing key. `Debug` never prints key material.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    material: Material,
    signer: Signer,
    /// The public key in the form `ring` verifies with.
    public: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate(alg: Algorithm) -> Result<Self, Error> {
        let mut rng = rand_core::OsRng;
        let material = match alg {
            Algorithm::Es256 => Material::Es256(p256::ecdsa::SigningKey::random(&mut rng)),
            Algorithm::Rs256 => Material::Rs256(Box::new(
                rsa::RsaPrivateKey::new(&mut rng, 2048)
                    .map_err(|e| Error::Generation(e.to_string()))?,
            )),
        };
        Self::with_material(alg, material)
    }

    /// Restores a key from the PKCS#8 DER bytes produced by [`Self::to_pkcs8`].
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, Error> {
        let invalid = |detail: String| Error::InvalidKey {
            alg: alg.as_str(),
            detail,
        };
        let material = match alg {
            Algorithm::Es256 => Material::Es256(
                p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| invalid(e.to_string()))?,
            ),
            Algorithm::Rs256 => Material::Rs256(Box::new(
                rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| invalid(e.to_string()))?,
            )),
        };
        Self::with_material(alg, material)
    }

    fn with_material(alg: Algorithm, material: Material) -> Result<Self, Error> {
        let der = match &material {
            Material::Es256(key) => key.to_pkcs8_der(),
            Material::Rs256(key) => key.to_pkcs8_der(),
        }
        .map_err(|e| Error::InvalidKey {
            alg: alg.as_str(),
            detail: e.to_string(),
        })?;
        let rejected = |e: ring::error::KeyRejected| Error::InvalidKey {
            alg: alg.as_str(),
            detail: e.to_string(),
        };
        let (signer, public) = match alg {
            Algorithm::Es256 => {
                let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der.as_bytes(),
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(rejected)?;
                let public = ring::signature::KeyPair::public_key(&pair)
                    .as_ref()
                    .to_vec();
                (Signer::Es256(pair), public)
            }
            Algorithm::Rs256 => {
                let pair =
                    ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(rejected)?;
                let public = ring::signature::KeyPair::public_key(&pair)
                    .as_ref()
                    .to_vec();
                (Signer::Rs256(pair), public)
            }
        };
        let kid = match &material {
            Material::Es256(key) => {
                let (x, y) = ec_coordinates(key);
                thumbprint(&[("crv", "P-256"), ("kty", "EC"), ("x", &x), ("y", &y)])
            }
            Material::Rs256(key) => {
                let (n, e) = rsa_components(key);
                thumbprint(&[("e", &e), ("kty", "RSA"), ("n", &n)])
            }
        };
        Ok(Self {
            alg,
            kid,
            material,
            signer,
            public,
        })
    }

    /// Signs `claims` as a JWT (RFC 7519) with header `alg`, `typ` and `kid`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> Result<String, Error> {
        let header = json!({"alg": self.alg.as_str(), "typ": typ, "kid": self.kid});
        let mut token = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let rng = ring::rand::SystemRandom::new();
        let signature = match &self.signer {
            Signer::Es256(pair) => pair
                .sign(&rng, token.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::Signing)?,
            Signer::Rs256(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    token.as_bytes(),
                    &mut out,
                )
                .map_err(|_| Error::Signing)?;
                out
            }
        };
        token.push('.');
        token.push_str(&b64url(&signature));
        Ok(token)
    }

    /// Whether this key made the token's signature (under its own algorithm).
    pub fn verify(&self, jwt: &crate::Jwt) -> bool {
        if jwt.alg() != self.alg.as_str() {
            return false;
        }
        let algorithm: &'static dyn ring::signature::VerificationAlgorithm = match self.alg {
            Algorithm::Es256 => &ring::signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::Rs256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        };
        jwt.verify_raw(algorithm, &self.public)
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// PKCS#8 DER of the private key, for storage.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, Error> {
        let doc = match &self.material {
            Material::Es256(key) => key.to_pkcs8_der(),
            Material::Rs256(key) => key.to_pkcs8_der(),
        }
        .map_err(|e| Error::InvalidKey {
            alg: self.alg.as_str(),
            detail: e.to_string(),
        })?;
        Ok(doc.as_bytes().to_vec())
    }

    /// The public half as a JWK (RFC 7517 §4) with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> Value {
        match &self.material {
            Material::Es256(key) => {
                let (x, y) = ec_coordinates(key);
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y,
                       "kid": self.kid, "use": "sig", "alg": self.alg.as_str()})
            }
            Material::Rs256(key) => {
                let (n, e) = rsa_components(key);
                json!({"kty": "RSA", "n": n, "e": e,
                       "kid": self.kid, "use": "sig", "alg": self.alg.as_str()})
            }
        }
    }
}

fn ec_coordinates(key: &p256::ecdsa::SigningKey) -> (String, String) {
    let point = key.verifying_key().to_encoded_point(false);
    // An uncompressed point of a valid key always carries both coordinates.
    let x = point.x().map(|x| b64url(x)).unwrap_or_default();
    let y = point.y().map(|y| b64url(y)).unwrap_or_default();
    (x, y)
}

fn rsa_components(key: &rsa::RsaPrivateKey) -> (String, String) {
    (
        b64url(&key.n().to_bytes_be()),
        b64url(&key.e().to_bytes_be()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pkcs8_with_stable_kid() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let restored = SigningKey::from_pkcs8(alg, &key.to_pkcs8().unwrap()).unwrap();
            assert_eq!(key.kid(), restored.kid());
            assert_eq!(key.public_jwk(), restored.public_jwk());
        }
    }

    #[test]
    fn public_jwk_has_no_private_members() {
        for alg in Algorithm::ALL {
            let jwk = SigningKey::generate(alg).unwrap().public_jwk();
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(jwk.get(private).is_none(), "{alg:?} leaks {private}");
            }
            // The published key must pass the same validation clients' keys do.
            crate::validate_client_jwks(&serde_json::json!({"keys": [jwk]})).unwrap();
        }
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1 example key and its expected thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(&[("e", "AQAB"), ("kty", "RSA"), ("n", n)]),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
