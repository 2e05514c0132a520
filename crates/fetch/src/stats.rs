//! Counters, read as a [`Stats`] snapshot.
//!
//! Plain atomics and one small map: the fetcher counts, the operator's
//! metrics endpoint (or a test) reads. Reasons are the stable strings of
//! [`crate::FetchError::reason`].

use crate::error::FetchError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A snapshot of the fetcher's counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `get` and `get_fresh`.
    pub requests: u64,
    /// Answered from a cached response.
    pub cache_hits: u64,
    /// Answered from a cached failure.
    pub negative_hits: u64,
    /// Requests handed to the HTTP client (the connection may still be
    /// refused when the name resolves to a refused address).
    pub sent: u64,
    /// Fetches that returned a document.
    pub fetched: u64,
    /// `get_fresh` calls that were within `refetch_interval` of the last
    /// forced re-fetch and so were served like `get`.
    pub fresh_rate_limited: u64,
    /// Refusals by the fetcher's own rules, by reason (`not_https`,
    /// `userinfo`, `invalid_url`, `non_global_address`).
    pub refusals: BTreeMap<&'static str, u64>,
    /// Other failures, by reason (`timeout`, `status`, `too_large`, …).
    pub errors: BTreeMap<&'static str, u64>,
    /// Entries in the cache now, failures included.
    pub cache_entries: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub cache_hits: AtomicU64,
    pub negative_hits: AtomicU64,
    pub sent: AtomicU64,
    pub fetched: AtomicU64,
    pub fresh_rate_limited: AtomicU64,
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    refusals: BTreeMap<&'static str, u64>,
    errors: BTreeMap<&'static str, u64>,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn failure(&self, e: &FetchError) {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let map = if e.is_refusal() {
            &mut f.refusals
        } else {
            &mut f.errors
        };
        *map.entry(e.reason()).or_default() += 1;
    }

    pub fn snapshot(&self, cache_entries: usize) -> Stats {
        let f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests: get(&self.requests),
            cache_hits: get(&self.cache_hits),
            negative_hits: get(&self.negative_hits),
            sent: get(&self.sent),
            fetched: get(&self.fetched),
            fresh_rate_limited: get(&self.fresh_rate_limited),
            refusals: f.refusals.clone(),
            errors: f.errors.clone(),
            cache_entries,
        }
    }
}
