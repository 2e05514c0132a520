//! Reading and verifying the audit log.

use charter_store::audit::{verify_chain, GENESIS};
use charter_store::{AuditEvent, AuditRecord, Store};

use crate::AuditFilter;
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

/// Up to `limit` entries after `after` that match `filter`. The log is read
/// in pages until enough entries match or it ends, so a filtered query is
/// never cut short by entries that did not match.
pub async fn query(
    store: &dyn Store,
    mut after: i64,
    limit: u32,
    filter: &AuditFilter,
) -> Result<Vec<Value>, Error> {
    let mut found = Vec::new();
    while found.len() < limit as usize {
        let page = store.audit_entries(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            if found.len() < limit as usize && record.event().is_some_and(|e| filter.matches(&e)) {
                found.push(entry_json(record));
            }
        }
    }
    Ok(found)
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

impl AuditFilter {
    fn matches(&self, e: &AuditEvent) -> bool {
        self.client_id
            .as_ref()
            .is_none_or(|c| e.client_id.as_ref() == Some(c))
            && self
                .organization_id
                .as_ref()
                .is_none_or(|o| e.organization_id.as_ref() == Some(o))
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.since.is_none_or(|t| e.at >= t)
    }
}
