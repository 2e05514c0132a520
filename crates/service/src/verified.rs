//! Access tokens whose signature has been verified, so that a resource
//! server introspecting the same token again does not pay for another
//! ECDSA verification (the largest cost of introspection).
//!
//! The cache is keyed by the SHA-256 of the exact token bytes: identical
//! bytes verify identically for as long as the signing key is published,
//! and keys are retired only after every token they signed has expired.
//! Only the signature check is cached; expiry, revocation and the owning
//! client's state are checked on every request.

use charter_jose::Jwt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The most tokens remembered (about 2 KiB each).
const CAPACITY: usize = 16_384;

/// A verified token and its `exp`.
type Entry = (Arc<Jwt>, i64);

#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// A verified, unexpired token with this digest.
    pub(crate) fn get(&self, digest: &[u8; 32], now: i64) -> Option<Arc<Jwt>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(digest)
            .filter(|(_, exp)| *exp > now)
            .map(|(jwt, _)| jwt.clone())
    }

    /// Remembers a token that verified. When full, expired tokens go
    /// first, and if none has expired everything is forgotten: a miss only
    /// costs one verification.
    pub(crate) fn insert(&self, digest: [u8; 32], jwt: Arc<Jwt>, exp: i64, now: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, (jwt, exp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use charter_jose::{Algorithm, SigningKey};

    #[test]
    fn remembers_until_expiry_and_stays_bounded() {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let cache = VerifiedTokens::default();
        let token = key
            .sign_jwt("at+jwt", &serde_json::json!({"exp": 100}))
            .unwrap();
        let jwt = Arc::new(charter_jose::decode(&token).unwrap());
        cache.insert(digest(&token), jwt, 100, 0);
        assert!(cache.get(&digest(&token), 99).is_some());
        assert!(cache.get(&digest(&token), 100).is_none(), "expired");
        assert!(cache.get(&digest("other"), 0).is_none());
        let jwt = Arc::new(charter_jose::decode(&token).unwrap());
        for i in 0..(CAPACITY + 10) {
            cache.insert(digest(&i.to_string()), jwt.clone(), 100, 0);
        }
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
