//! Watches the server's data directory for writes, to show that the token
//! path writes nothing to disk (only the batched `last_used_at` flush and
//! the periodic lifecycle sweep may commit, on a timer, never per request).
//!
//! The witness is the SQLite wal-index header in `<db>-shm`: its `iChange`
//! field (offset 8, native byte order) is "incremented with each
//! transaction" (<https://www.sqlite.org/walformat.html>): SQLite bumps it
//! once per committed write transaction, while readers, passive checkpoints
//! and WAL restarts leave it alone, so a delta counts commits. Sizes of
//! the database and the WAL, and the length and modification time of every
//! other file in the data directory, are compared as well.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `iVersion` of a WAL-mode wal-index header.
const WAL_INDEX_VERSION: u32 = 3_007_000;
/// Size of one copy of the wal-index header (there are two, back to back).
const WAL_INDEX_HEADER_LEN: usize = 48;

pub struct DiskProbe {
    db: PathBuf,
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The wal-index `iChange` counter, when the database is in WAL mode.
    change_counter: Option<u32>,
    db_len: Option<u64>,
    wal_len: Option<u64>,
    /// Every other file of the data directory: length and modification time.
    others: BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
}

/// What changed on disk between two snapshots.
pub struct Delta {
    /// SQLite write transactions committed in between.
    pub transactions: Option<u32>,
    pub db_len: (Option<u64>, Option<u64>),
    pub wal_len: (Option<u64>, Option<u64>),
    /// Other files of the data directory that appeared, vanished or changed.
    pub other_files_changed: Vec<String>,
}

impl DiskProbe {
    /// `db`: the SQLite database file; `data_dir`: the server's data
    /// directory, whose other files are watched too.
    pub fn new(db: PathBuf, data_dir: Option<PathBuf>) -> Self {
        Self { db, data_dir }
    }

    pub fn database(&self) -> &Path {
        &self.db
    }

    pub fn snapshot(&self) -> Snapshot {
        let with_suffix = |suffix: &str| {
            let mut name = self.db.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let len = |p: &Path| fs::metadata(p).ok().map(|m| m.len());
        let wal = with_suffix("-wal");
        let shm = with_suffix("-shm");
        let mut others = BTreeMap::new();
        if let Some(dir) = &self.data_dir {
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path == self.db || path == wal || path == shm {
                        continue;
                    }
                    if let Ok(meta) = entry.metadata() {
                        others.insert(path, (meta.len(), meta.modified().ok()));
                    }
                }
            }
        }
        Snapshot {
            change_counter: change_counter(&shm),
            db_len: len(&self.db),
            wal_len: len(&wal),
            others,
        }
    }
}

/// Reads `iChange` from the wal-index header, insisting that both copies
/// agree (a writer may be updating them while we read).
fn change_counter(shm: &Path) -> Option<u32> {
    for _ in 0..100 {
        let bytes = fs::read(shm).ok()?;
        if bytes.len() < 2 * WAL_INDEX_HEADER_LEN {
            return None;
        }
        let (first, second) = bytes[..2 * WAL_INDEX_HEADER_LEN].split_at(WAL_INDEX_HEADER_LEN);
        let word = |at: usize| {
            u32::from_ne_bytes([first[at], first[at + 1], first[at + 2], first[at + 3]])
        };
        if word(0) != WAL_INDEX_VERSION || first[12] != 1 {
            return None;
        }
        if first == second {
            return Some(word(8));
        }
        std::thread::yield_now();
    }
    None
}

impl Snapshot {
    pub fn delta(&self, after: &Snapshot) -> Delta {
        let transactions = match (self.change_counter, after.change_counter) {
            (Some(a), Some(b)) => Some(b.wrapping_sub(a)),
            _ => None,
        };
        let mut other_files_changed = Vec::new();
        for (path, before) in &self.others {
            match after.others.get(path) {
                None => other_files_changed.push(format!("{} removed", path.display())),
                Some(now) if now != before => {
                    other_files_changed.push(format!("{} changed", path.display()))
                }
                Some(_) => {}
            }
        }
        for path in after.others.keys() {
            if !self.others.contains_key(path) {
                other_files_changed.push(format!("{} created", path.display()));
            }
        }
        Delta {
            transactions,
            db_len: (self.db_len, after.db_len),
            wal_len: (self.wal_len, after.wal_len),
            other_files_changed,
        }
    }
}

fn mib(len: Option<u64>) -> String {
    len.map_or("absent".into(), |n| {
        format!("{:.2} MiB", n as f64 / 1_048_576.0)
    })
}

impl Delta {
    /// One line, e.g. `SQLite write transactions: +1 (...)`.
    pub fn describe(&self, requests: u64) -> String {
        let txns = self
            .transactions
            .map_or("unknown (no WAL index)".into(), |n| format!("+{n}"));
        let others = if self.other_files_changed.is_empty() {
            "other data files unchanged".to_string()
        } else {
            format!("other data files: {}", self.other_files_changed.join(", "))
        };
        format!(
            "SQLite write transactions {txns} over {requests} requests; database {} -> {}, WAL {} -> {}; {others}",
            mib(self.db_len.0),
            mib(self.db_len.1),
            mib(self.wal_len.0),
            mib(self.wal_len.1),
        )
    }

    pub fn to_json(&self, requests: u64) -> serde_json::Value {
        serde_json::json!({
            "sqlite_write_transactions": self.transactions,
            "requests": requests,
            "db_bytes_before": self.db_len.0, "db_bytes_after": self.db_len.1,
            "wal_bytes_before": self.wal_len.0, "wal_bytes_after": self.wal_len.1,
            "other_files_changed": self.other_files_changed,
        })
    }
}
