//! The server's signing keys: loaded from the store, generated on first
//! start, and published as a JWK Set.

use charter_jose::{Algorithm, SigningKey};
use charter_store::{SigningKeyRecord, Store};
use serde_json::{json, Value};

use crate::Error;

/// The signing keys in force.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// Loads the stored keys, generating and storing an ES256 and an RS256
    /// key for any algorithm that has none. Replicas racing here converge on
    /// the keys stored first.
    pub async fn load_or_create(store: &dyn Store) -> Result<Self, Error> {
        let mut records = store.signing_keys().await?;
        let missing: Vec<Algorithm> = Algorithm::ALL
            .into_iter()
            .filter(|alg| !records.iter().any(|r| r.alg == alg.as_str()))
            .collect();
        if !missing.is_empty() {
            let mut fresh = Vec::new();
            for alg in missing {
                let key = SigningKey::generate(alg).map_err(|e| Error::Internal(e.to_string()))?;
                fresh.push(SigningKeyRecord {
                    kid: key.kid().to_owned(),
                    alg: alg.as_str().to_owned(),
                    private_pkcs8: key.to_pkcs8().map_err(|e| Error::Internal(e.to_string()))?,
                    created_at: crate::now(),
                });
            }
            records = store.ensure_signing_keys(fresh).await?;
        }
        let keys = records
            .iter()
            .map(|r| {
                let alg = Algorithm::parse(&r.alg).ok_or_else(|| {
                    Error::Internal(format!("stored key {} has unknown alg {}", r.kid, r.alg))
                })?;
                SigningKey::from_pkcs8(alg, &r.private_pkcs8)
                    .map_err(|e| Error::Internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { keys })
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The public JWK Set served at `jwks_uri` (RFC 7517 §5).
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(SigningKey::public_jwk).collect::<Vec<_>>() })
    }
}
