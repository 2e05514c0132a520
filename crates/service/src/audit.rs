//! Reading and verifying the audit log.

use charter_store::audit::{verify_chain, GENESIS};
use charter_store::{AuditRecord, Store};
use serde_json::{json, Value};

use crate::Error;

const PAGE: u32 = 1000;

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Intact { entries: i64 },
    Broken { seq: i64, reason: String },
}

/// Walks the whole log in pages and checks every link.
pub async fn verify(store: &dyn Store) -> Result<Verification, Error> {
    let (mut prev, mut seq) = (GENESIS, 0);
    loop {
        let page = store.audit_entries(seq, PAGE).await?;
        if page.is_empty() {
            return Ok(Verification::Intact { entries: seq });
        }
        match verify_chain(&page, prev, seq) {
            Ok((hash, last)) => (prev, seq) = (hash, last),
            Err((seq, reason)) => return Ok(Verification::Broken { seq, reason }),
        }
    }
}

/// One entry as JSON: its sequence number, hashes and event.
pub fn entry_json(record: &AuditRecord) -> Value {
    json!({
        "seq": record.seq,
        "event": serde_json::from_str::<Value>(&record.event_json).unwrap_or(Value::Null),
        "prev_hash": hex(&record.prev_hash),
        "hash": hex(&record.hash),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Verification {
    pub fn to_json(&self) -> Value {
        match self {
            Verification::Intact { entries } => json!({"valid": true, "entries": entries}),
            Verification::Broken { seq, reason } => {
                json!({"valid": false, "first_broken_entry": seq, "reason": reason})
            }
        }
    }
}
