//! The audit log with provenance: one entry per governed change, appended in
//! the same transaction as the change, and chained by hashes so that an
//! edited, inserted or deleted row is detected.
//!
//! `hash(n) = SHA-256(hash(n-1) ‖ seq(n) ‖ canonical JSON of event(n))`,
//! with 32 zero bytes before the first entry. Entries never hold a secret.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{TokenHash, UnixTime};

/// What happened, who did it, and under which policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: UnixTime,
    /// `iat:<id>`, `client:<client_id>` (its registration access token),
    /// `anonymous`, `statement:<iss>` (a registration only a software
    /// statement admitted), `admin`, or `system`.
    pub actor: String,
    /// e.g. `client.register`, `client.update`, `client.delete`, `iat.issue`.
    pub action: String,
    /// `admitted`, `pending`, `refused` or `done`.
    pub decision: String,
    pub organization_id: Option<String>,
    pub client_id: Option<String>,
    pub reasons: Vec<String>,
    pub policy_version: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// An event at `at` by `actor`, with no optional member set.
    pub fn new(
        at: UnixTime,
        actor: impl Into<String>,
        action: impl Into<String>,
        decision: impl Into<String>,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            action: action.into(),
            decision: decision.into(),
            organization_id: None,
            client_id: None,
            reasons: Vec::new(),
            policy_version: None,
            source: None,
            request_id: None,
        }
    }
}

/// A stored entry. `event_json` is the stored text the hash covers, so
/// verification never depends on re-serializing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: UnixTime,
    pub event_json: String,
    pub prev_hash: TokenHash,
    pub hash: TokenHash,
}

impl AuditRecord {
    pub fn event(&self) -> Option<AuditEvent> {
        serde_json::from_str(&self.event_json).ok()
    }
}

/// The hash before the first entry.
pub const GENESIS: TokenHash = [0; 32];

/// The canonical text of an event: its JSON with members in declaration order.
pub fn canonical(event: &AuditEvent) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

pub fn chain_hash(prev: &TokenHash, seq: i64, event_json: &[u8]) -> TokenHash {
    let mut digest = Sha256::new();
    digest.update(prev);
    digest.update(seq.to_be_bytes());
    digest.update(event_json);
    digest.finalize().into()
}

/// The next record after `(prev_seq, prev_hash)`.
pub fn next_record(prev_seq: i64, prev_hash: TokenHash, event: &AuditEvent) -> AuditRecord {
    let seq = prev_seq + 1;
    let event_json = canonical(event);
    let hash = chain_hash(&prev_hash, seq, event_json.as_bytes());
    AuditRecord {
        seq,
        at: event.at,
        event_json,
        prev_hash,
        hash,
    }
}

/// Checks records in order from the start of the log; returns the first
/// broken entry's sequence number and what is wrong with it.
pub fn verify_chain(
    records: &[AuditRecord],
    mut expected_prev: TokenHash,
    mut expected_seq: i64,
) -> Result<(TokenHash, i64), (i64, String)> {
    for r in records {
        expected_seq += 1;
        if r.seq != expected_seq {
            return Err((
                r.seq,
                format!("sequence gap: expected entry {expected_seq}"),
            ));
        }
        if r.prev_hash != expected_prev {
            return Err((r.seq, "does not link to the previous entry".into()));
        }
        if chain_hash(&r.prev_hash, r.seq, r.event_json.as_bytes()) != r.hash {
            return Err((r.seq, "content does not match its hash (edited)".into()));
        }
        expected_prev = r.hash;
    }
    Ok((expected_prev, expected_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut records = Vec::new();
        let (mut seq, mut hash) = (0, GENESIS);
        for i in 0..n {
            let r = next_record(seq, hash, &AuditEvent::new(i, "admin", "iat.issue", "done"));
            (seq, hash) = (r.seq, r.hash);
            records.push(r);
        }
        records
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify_chain(&chain(5), GENESIS, 0).is_ok());
    }

    #[test]
    fn tampering_is_located() {
        let mut edited = chain(5);
        edited[2].event_json = edited[2].event_json.replace("done", "admitted");
        assert_eq!(verify_chain(&edited, GENESIS, 0).unwrap_err().0, 3);
        let mut deleted = chain(5);
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted, GENESIS, 0).unwrap_err().0, 3);
        let mut relinked = chain(5);
        relinked[3].prev_hash = [1; 32];
        assert_eq!(verify_chain(&relinked, GENESIS, 0).unwrap_err().0, 4);
    }
}
