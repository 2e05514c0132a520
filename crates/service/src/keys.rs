//! The server's signing keys and their rotation.
//!
//! Every key is stored with the time it starts signing (`activates_at`) and
//! is published in the JWK Set from the moment it is stored. The signing
//! key of an algorithm is the one with the latest `activates_at` not in the
//! future, so every replica on one database picks the same key at the same
//! time without talking to the others. Rotation ([`KeyRing::refresh`]):
//!
//! 1. when the current key has signed for `key_rotation_interval` minus
//!    `key_publish_ahead`, a successor is stored, activating no sooner than
//!    `key_publish_ahead` from now; the store admits one successor per
//!    algorithm however many replicas race;
//! 2. a key whose successor has been signing for longer than any access
//!    token may live (`MAX_ACCESS_TOKEN_LIFETIME`, whatever the lifetime
//!    configured now, plus clock skew) can verify nothing still valid, and
//!    is deleted.
//!
//! Each replica reloads the keys every [`KeyRing::refresh_interval`], well
//! within `key_publish_ahead`, so it publishes a new key before any replica
//! signs with it. Restarts change nothing: the schedule lives in the database.

use charter_config::TokensConfig;
use charter_jose::{Algorithm, Jwt, SigningKey};
use charter_store::{SigningKeyRecord, Store};
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::Error;

/// Clock skew tolerated between replicas and resource servers.
const SKEW_SECS: i64 = 60;

/// One loaded key and when it starts signing.
#[derive(Debug)]
struct LoadedKey {
    key: Arc<SigningKey>,
    activates_at: i64,
}

/// The keys in force at one moment, with their JWK Set pre-rendered.
#[derive(Debug)]
struct Snapshot {
    keys: Vec<LoadedKey>,
    jwks: Arc<str>,
}

/// The server's signing keys, shared by every request and refreshed in the background.
#[derive(Debug)]
pub struct KeyRing {
    snapshot: RwLock<Arc<Snapshot>>,
    config: TokensConfig,
}

/// What [`plan`] decided for one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Store a successor activating at this time.
    pub successor_at: Option<i64>,
    /// Delete these retired keys.
    pub retire: Vec<String>,
}

/// The rotation decision for the keys of one algorithm, a pure function of
/// the stored schedule and the clock.
pub(crate) fn plan(keys: &[(String, i64)], now: i64, config: &TokensConfig) -> Plan {
    let interval = config.key_rotation_interval.as_secs() as i64;
    let ahead = config.key_publish_ahead.as_secs() as i64;
    // The longest any token may live, not the lifetime configured now: a
    // token signed before the operator lowered it must still verify.
    let token_lifetime = charter_config::MAX_ACCESS_TOKEN_LIFETIME
        .max(config.access_token_lifetime)
        .as_secs() as i64;
    let mut sorted: Vec<&(String, i64)> = keys.iter().collect();
    sorted.sort_by_key(|(kid, at)| (*at, kid.clone()));
    let current = sorted.iter().rev().find(|(_, at)| *at <= now);
    let has_successor = sorted.iter().any(|(_, at)| *at > now);
    let successor_at = match current {
        Some((_, at)) if !has_successor && now >= at + interval - ahead => {
            Some((at + interval).max(now + ahead))
        }
        None if !has_successor => Some(now),
        _ => None,
    };
    // A key is retired once the key after it has signed for longer than
    // any token it signed can live.
    let retire = sorted
        .windows(2)
        .filter(|pair| pair[1].1 + token_lifetime + SKEW_SECS < now)
        .map(|pair| pair[0].0.clone())
        .collect();
    Plan {
        successor_at,
        retire,
    }
}

fn record(key: &SigningKey, alg: Algorithm, activates_at: i64) -> Result<SigningKeyRecord, Error> {
    Ok(SigningKeyRecord {
        kid: key.kid().to_owned(),
        alg: alg.as_str().to_owned(),
        private_pkcs8: key.to_pkcs8().map_err(|e| Error::Internal(e.to_string()))?,
        created_at: crate::now(),
        activates_at,
    })
}

impl KeyRing {
    /// Loads the stored keys, generating an ES256 and an RS256 key for any
    /// algorithm that has none (replicas racing here converge on the keys
    /// stored first), then applies the rotation schedule once.
    pub async fn load(store: &dyn Store, config: TokensConfig) -> Result<Self, Error> {
        let records = store.signing_keys().await?;
        let missing: Vec<Algorithm> = Algorithm::ALL
            .into_iter()
            .filter(|alg| !records.iter().any(|r| r.alg == alg.as_str()))
            .collect();
        if !missing.is_empty() {
            let now = crate::now();
            let mut fresh = Vec::new();
            for alg in missing {
                let key = SigningKey::generate(alg).map_err(|e| Error::Internal(e.to_string()))?;
                fresh.push(record(&key, alg, now)?);
            }
            store.ensure_signing_keys(fresh).await?;
        }
        let ring = Self {
            snapshot: RwLock::new(Arc::new(Snapshot {
                keys: Vec::new(),
                jwks: Arc::from("{\"keys\":[]}"),
            })),
            config,
        };
        ring.refresh(store, crate::now()).await?;
        Ok(ring)
    }

    /// How often each replica should call [`Self::refresh`]: often enough
    /// that a new key is seen well before it signs.
    pub fn refresh_interval(&self) -> Duration {
        (self.config.key_publish_ahead / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// The JWK Set responses may be cached this long: shorter than the time
    /// a new key is published before it signs.
    pub fn jwks_max_age(&self) -> Duration {
        (self.config.key_publish_ahead / 4).min(Duration::from_secs(300))
    }

    /// Applies the rotation schedule and reloads the keys from the store.
    pub async fn refresh(&self, store: &dyn Store, now: i64) -> Result<(), Error> {
        let mut records = store.signing_keys().await?;
        for alg in Algorithm::ALL {
            let schedule: Vec<(String, i64)> = records
                .iter()
                .filter(|r| r.alg == alg.as_str())
                .map(|r| (r.kid.clone(), r.activates_at))
                .collect();
            let plan = plan(&schedule, now, &self.config);
            if let Some(at) = plan.successor_at {
                let key = tokio_blocking_generate(alg).await?;
                // Generating an RSA key takes a while: the key must still be
                // published a full `key_publish_ahead` before it signs.
                let ahead = self.config.key_publish_ahead.as_secs() as i64;
                let at = at.max(crate::now() + ahead);
                if store
                    .insert_next_signing_key(record(&key, alg, at)?, now)
                    .await?
                {
                    tracing::info!(
                        alg = alg.as_str(),
                        kid = key.kid(),
                        activates_at = at,
                        "published the next signing key"
                    );
                }
                // Publish what is stored now (ours, or a racing replica's),
                // not after the other algorithm's turn.
                records = store.signing_keys().await?;
                self.install(&records)?;
            }
            for kid in &plan.retire {
                store.delete_signing_key(kid).await?;
                tracing::info!(alg = alg.as_str(), kid = %kid, "retired a signing key");
            }
            records.retain(|r| !plan.retire.contains(&r.kid));
        }
        self.install(&records)
    }

    /// Makes `records` the keys in force (keys already loaded are reused).
    fn install(&self, records: &[SigningKeyRecord]) -> Result<(), Error> {
        let current = self.snapshot();
        let mut keys = Vec::with_capacity(records.len());
        for r in records {
            // Keys already loaded are reused: parsing an RSA key is slow.
            if let Some(existing) = current.keys.iter().find(|k| k.key.kid() == r.kid) {
                keys.push(LoadedKey {
                    key: existing.key.clone(),
                    activates_at: r.activates_at,
                });
                continue;
            }
            let alg = Algorithm::parse(&r.alg).ok_or_else(|| {
                Error::Internal(format!("stored key {} has unknown alg {}", r.kid, r.alg))
            })?;
            let key = SigningKey::from_pkcs8(alg, &r.private_pkcs8)
                .map_err(|e| Error::Internal(e.to_string()))?;
            keys.push(LoadedKey {
                key: Arc::new(key),
                activates_at: r.activates_at,
            });
        }
        let jwks = json!({ "keys": keys.iter().map(|k| k.key.public_jwk()).collect::<Vec<_>>() });
        let snapshot = Arc::new(Snapshot {
            keys,
            jwks: Arc::from(jwks.to_string()),
        });
        if let Ok(mut slot) = self.snapshot.write() {
            *slot = snapshot;
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The public JWK Set (RFC 7517 §5) served at `jwks_uri`.
    pub fn jwks(&self) -> Arc<str> {
        self.snapshot().jwks.clone()
    }

    /// The key that signs with `alg` at `now`.
    pub fn signer(&self, alg: &str, now: i64) -> Option<Arc<SigningKey>> {
        self.snapshot()
            .keys
            .iter()
            .filter(|k| k.key.alg().as_str() == alg && k.activates_at <= now)
            .max_by_key(|k| k.activates_at)
            .map(|k| k.key.clone())
    }

    /// Whether one of the published keys (named by the token's `kid`) made
    /// the token's signature.
    pub fn verify(&self, jwt: &Jwt) -> bool {
        let Some(kid) = jwt.kid() else {
            return false;
        };
        self.snapshot()
            .keys
            .iter()
            .find(|k| k.key.kid() == kid)
            .is_some_and(|k| k.key.verify(jwt))
    }

    /// The kids published now, for tests and reports.
    pub fn kids(&self) -> Vec<String> {
        self.snapshot()
            .keys
            .iter()
            .map(|k| k.key.kid().to_owned())
            .collect()
    }
}

/// RSA key generation takes up to a second: keep it off the async workers.
async fn tokio_blocking_generate(alg: Algorithm) -> Result<SigningKey, Error> {
    tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TokensConfig {
        TokensConfig {
            access_token_lifetime: Duration::from_secs(600),
            signing_alg: "ES256",
            key_rotation_interval: Duration::from_secs(10_000),
            key_publish_ahead: Duration::from_secs(1_000),
            ..TokensConfig::default()
        }
    }

    fn keys(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(k, at)| (k.to_string(), *at)).collect()
    }

    #[test]
    fn a_successor_is_published_ahead_of_the_end_of_the_interval() {
        let c = config();
        let one = keys(&[("a", 0)]);
        assert_eq!(plan(&one, 8_999, &c).successor_at, None, "too early");
        assert_eq!(plan(&one, 9_000, &c).successor_at, Some(10_000));
        // A server that was down past the planned time still publishes first.
        assert_eq!(plan(&one, 50_000, &c).successor_at, Some(51_000));
        // Once a successor waits, nothing more is added.
        let two = keys(&[("a", 0), ("b", 10_000)]);
        assert_eq!(plan(&two, 9_500, &c).successor_at, None);
        assert_eq!(plan(&[], 5, &c).successor_at, Some(5));
    }

    #[test]
    fn old_keys_stay_until_their_tokens_have_expired() {
        let c = config();
        const DAY: i64 = 86_400;
        let two = keys(&[("a", 0), ("b", 10_000)]);
        // b signs from 10 000; tokens a signed live at most a day (whatever
        // the lifetime configured now), plus skew.
        assert!(plan(&two, 10_000 + DAY + 60, &c).retire.is_empty());
        assert_eq!(plan(&two, 10_000 + DAY + 61, &c).retire, ["a"]);
        let three = keys(&[("c", 20_000), ("a", 0), ("b", 10_000)]);
        assert_eq!(plan(&three, 19_000 + DAY, &c).retire, ["a"]);
        assert_eq!(plan(&three, 21_000 + DAY, &c).retire, ["a", "b"]);
    }
}
