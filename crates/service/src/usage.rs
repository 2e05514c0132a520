//! `last_used_at` without a disk write per request: each token request
//! notes the client in memory, and a background task flushes the batch to
//! the store every `lifecycle.last_used_flush_interval`.

use charter_store::Store;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::Error;

/// The clients used since the last flush, with the latest time of use.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<String, i64>>,
}

impl UsageRecorder {
    /// Notes that `client_id` was used at `at`.
    pub fn record(&self, client_id: &str, at: i64) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        match pending.get_mut(client_id) {
            Some(last) => *last = (*last).max(at),
            None => {
                pending.insert(client_id.to_owned(), at);
            }
        }
    }

    /// Writes the batch in one store call; on failure the batch is kept
    /// for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, Error> {
        let batch: Vec<(String, i64)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        let count = batch.len();
        if count == 0 {
            return Ok(0);
        }
        if let Err(e) = store.touch_clients(batch.clone()).await {
            for (client_id, at) in batch {
                self.record(&client_id, at);
            }
            return Err(e.into());
        }
        Ok(count)
    }
}
