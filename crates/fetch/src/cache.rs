//! The bounded response cache, its negative half, and the rate limit on
//! forced re-fetches.
//!
//! Entries are keyed by URL and [`Purpose`] and hold either a document or a
//! failure, each with its own expiry. When full, the oldest insertion is
//! evicted (first in, first out: simple, and a client cannot keep its entry
//! alive by fetching it often). Freshness comes from `Cache-Control`
//! (RFC 9111 §5.2.2) clamped to the operator's bounds; it is *not* a full
//! RFC 9111 cache: no validators, no `Expires`, no heuristics, no `Vary`.

use crate::config::Purpose;
use crate::error::FetchError;
use crate::fetcher::Fetched;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

pub(crate) type Key = (String, Purpose);

#[derive(Debug)]
struct Entry {
    value: Result<Fetched, FetchError>,
    until: SystemTime,
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct Cache {
    max: usize,
    entries: HashMap<Key, Entry>,
    /// Insertion order: sequence number → key, oldest first.
    order: BTreeMap<u64, Key>,
    seq: u64,
    /// When each URL was last fetched by force.
    forced: HashMap<Key, SystemTime>,
}

impl Cache {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            forced: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The live entry for `key`, if any; an expired one is dropped.
    pub fn lookup(&mut self, key: &Key, now: SystemTime) -> Option<Result<Fetched, FetchError>> {
        let entry = self.entries.get(key)?;
        if now < entry.until {
            return Some(entry.value.clone());
        }
        self.remove(key);
        None
    }

    pub fn insert(&mut self, key: Key, value: Result<Fetched, FetchError>, until: SystemTime) {
        self.remove(&key);
        while self.entries.len() >= self.max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.seq += 1;
        self.order.insert(self.seq, key.clone());
        self.entries.insert(
            key,
            Entry {
                value,
                until,
                seq: self.seq,
            },
        );
    }

    pub fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.seq);
        }
    }

    /// Whether `key` may be fetched by force now, recording it if so: at
    /// most once per `interval`. The record is bounded like the cache;
    /// when it is full of recent entries, forcing is refused rather than
    /// forgetting a limit.
    pub fn try_force(&mut self, key: &Key, now: SystemTime, interval: Duration) -> bool {
        let recent = |at: &SystemTime| now < *at + interval;
        if self.forced.get(key).is_some_and(recent) {
            return false;
        }
        if self.forced.len() >= self.max {
            self.forced.retain(|_, at| recent(at));
            if self.forced.len() >= self.max {
                return false;
            }
        }
        self.forced.insert(key.clone(), now);
        true
    }
}

/// How long a response stays fresh: `max-age` minus `Age`
/// (RFC 9111 §4.2.1, §4.2.3), or `min` for `no-store`, `no-cache` or no
/// `max-age` at all, then clamped to `[min, max]`. `no-store` and `no-cache`
/// still get `min`: a cache that always re-fetched would let a client make
/// Charter fetch on every request.
pub(crate) fn freshness<'a>(
    cache_control: impl IntoIterator<Item = &'a str>,
    age: Option<&str>,
    (min, max): (Duration, Duration),
) -> Duration {
    let mut max_age = None;
    let mut uncacheable = false;
    for directive in cache_control.into_iter().flat_map(|v| v.split(',')) {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            uncacheable = true;
        } else if name.eq_ignore_ascii_case("max-age") {
            // RFC 9111 §4.2.1: an invalid or repeated value makes the
            // response stale; `min` is the closest we go to stale.
            match (max_age, value.and_then(|v| v.parse::<u64>().ok())) {
                (None, Some(secs)) => max_age = Some(secs),
                _ => uncacheable = true,
            }
        }
    }
    let ttl = match max_age {
        Some(secs) if !uncacheable => {
            let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
            Duration::from_secs(secs.saturating_sub(age))
        }
        _ => min,
    };
    ttl.clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const MIN: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(86_400);

    #[track_caller]
    fn check(cache_control: &[&str], age: Option<&str>, expected_secs: u64) {
        let got = freshness(cache_control.iter().copied(), age, (MIN, MAX));
        assert_eq!(
            got,
            Duration::from_secs(expected_secs),
            "{cache_control:?} {age:?}"
        );
    }

    #[test]
    fn freshness_from_cache_control_rfc9111() {
        check(&[], None, 60);
        check(&["max-age=300"], None, 300);
        check(&["public, max-age=300"], None, 300);
        check(&["Max-Age=\"300\""], None, 300);
        check(&["max-age=300"], Some("100"), 200);
        check(&["max-age=300"], Some("1000"), 60);
        check(&["max-age=0"], None, 60);
        check(&["max-age=10"], None, 60);
        check(&["max-age=9999999"], None, 86_400);
        check(&["max-age=300, no-cache"], None, 60);
        check(&["no-store"], None, 60);
        check(&["private", "max-age=120"], None, 120);
        check(&["max-age=abc"], None, 60);
        check(&["max-age=-5"], None, 60);
        check(&["max-age=100, max-age=200"], None, 60);
        check(&["s-maxage=500"], None, 60);
    }

    fn doc(n: u8) -> Result<Fetched, FetchError> {
        let t = SystemTime::UNIX_EPOCH;
        Ok(Fetched {
            body: Bytes::from(vec![n]),
            content_type: "application/json".into(),
            fetched_at: t,
            expires_at: t,
        })
    }

    fn key(s: &str) -> Key {
        (s.to_owned(), Purpose::JwkSet)
    }

    #[test]
    fn expiry_and_fifo_eviction() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let later = |s| t0 + Duration::from_secs(s);
        let mut c = Cache::new(2);
        c.insert(key("a"), doc(1), later(10));
        c.insert(key("b"), doc(2), later(10));
        assert!(c.lookup(&key("a"), t0).is_some());
        // Full: inserting c evicts a, the oldest insertion, though it was
        // just read.
        c.insert(key("c"), doc(3), later(10));
        assert_eq!(c.len(), 2);
        assert!(c.lookup(&key("a"), t0).is_none());
        assert!(c.lookup(&key("b"), t0).is_some());
        // Replacing an entry does not evict another.
        c.insert(key("b"), doc(4), later(20));
        assert_eq!(c.len(), 2);
        assert!(c.lookup(&key("c"), t0).is_some());
        // Expiry.
        assert!(c.lookup(&key("c"), later(10)).is_none());
        assert_eq!(c.len(), 1);
        // Purposes are separate entries.
        assert!(c
            .lookup(&("b".into(), Purpose::SectorIdentifier), t0)
            .is_none());
    }

    #[test]
    fn forced_refetch_is_rate_limited_per_key() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let i = Duration::from_secs(30);
        let mut c = Cache::new(2);
        assert!(c.try_force(&key("a"), t0, i));
        assert!(!c.try_force(&key("a"), t0 + Duration::from_secs(29), i));
        assert!(c.try_force(&key("b"), t0, i));
        // The record is full of recent entries: refuse rather than forget.
        assert!(!c.try_force(&key("c"), t0, i));
        assert!(c.try_force(&key("a"), t0 + i, i));
        assert!(c.try_force(&key("c"), t0 + i, i));
    }
}
