//! Rate limits: registrations per source address and per initial access
//! token (GCRA via `governor`), and a block on sources that keep presenting
//! bad bearer tokens (RFC 7592 §5 asks that failed registration access token
//! attempts be limited). A blocked source is refused before its token is
//! even checked, so guessing does not go on at full speed.

use charter_config::LimitsConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Calls between sweeps of idle limiter state.
const SWEEP_EVERY: u64 = 4096;

pub struct Limits {
    per_source: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_token: Option<DefaultKeyedRateLimiter<String>>,
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    anonymous: Option<DefaultKeyedRateLimiter<IpAddr>>,
    statements: Option<DefaultKeyedRateLimiter<IpAddr>>,
    authorizations: Option<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    calls: AtomicU64,
}

fn per_second(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_second)
}

impl Limits {
    /// `anonymous_per_minute`: registrations without a token a source may
    /// make per minute, when anonymous registration is enabled;
    /// `statements_per_minute`: the same when software statements are.
    pub fn new(
        config: LimitsConfig,
        anonymous_per_minute: Option<u32>,
        statements_per_minute: Option<u32>,
    ) -> Self {
        Self {
            anonymous: anonymous_per_minute
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            statements: statements_per_minute
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            per_source: config
                .registrations_per_second_per_source
                .and_then(per_second)
                .map(RateLimiter::keyed),
            per_token: config
                .registrations_per_second_per_initial_access_token
                .and_then(per_second)
                .map(RateLimiter::keyed),
            failures: config
                .failed_authentications_per_minute_per_source
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            authorizations: config
                .authorization_requests_per_minute_per_source
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            blocked: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    fn sweep(&self) {
        if !self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            return;
        }
        if let Some(l) = &self.per_source {
            l.retain_recent();
        }
        if let Some(l) = &self.per_token {
            l.retain_recent();
        }
        if let Some(l) = &self.failures {
            l.retain_recent();
        }
        if let Some(l) = &self.authorizations {
            l.retain_recent();
        }
        for l in [&self.anonymous, &self.statements].into_iter().flatten() {
            l.retain_recent();
        }
        if let Ok(mut blocked) = self.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
    }

    /// Refuses a source that is blocked for failed authentications.
    pub fn check_blocked(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = source else { return Ok(()) };
        let until = self.blocked.lock().ok().and_then(|b| b.get(&ip).copied());
        match until {
            Some(until) if until > Instant::now() => Err(until - Instant::now()),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication; past the limit the source is blocked
    /// until the limiter would admit it again.
    pub fn record_failure(&self, source: Option<IpAddr>) {
        self.sweep();
        let (Some(ip), Some(failures)) = (source, &self.failures) else {
            return;
        };
        if let Err(not_until) = failures.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                blocked.insert(ip, Instant::now() + wait);
            }
        }
    }

    /// One registration attempt from `source`.
    pub fn check_registration_source(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        self.sweep();
        match (source, &self.per_source) {
            (Some(ip), Some(limiter)) => limiter
                .check_key(&ip)
                .map_err(|n| n.wait_time_from(DefaultClock::default().now())),
            _ => Ok(()),
        }
    }

    /// One authorization request from `source`.
    pub fn check_authorization_source(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        self.sweep();
        match (source, &self.authorizations) {
            (Some(ip), Some(limiter)) => limiter
                .check_key(&ip)
                .map_err(|n| n.wait_time_from(DefaultClock::default().now())),
            _ => Ok(()),
        }
    }

    /// One anonymous registration from `source`; refused when the source is
    /// unknown, since an anonymous caller must always be accountable to a limit.
    pub fn check_anonymous(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        match (source, &self.anonymous) {
            (Some(ip), Some(limiter)) => limiter
                .check_key(&ip)
                .map_err(|n| n.wait_time_from(DefaultClock::default().now())),
            _ => Err(Duration::from_secs(60)),
        }
    }

    /// One registration without a token from `source` that a software
    /// statement may admit; refused when the source is unknown, like
    /// [`Self::check_anonymous`].
    pub fn check_statement(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        match (source, &self.statements) {
            (Some(ip), Some(limiter)) => limiter
                .check_key(&ip)
                .map_err(|n| n.wait_time_from(DefaultClock::default().now())),
            _ => Err(Duration::from_secs(60)),
        }
    }

    /// One registration with the initial access token `id`.
    pub fn check_registration_token(&self, id: &str) -> Result<(), Duration> {
        match &self.per_token {
            Some(limiter) => limiter
                .check_key(&id.to_owned())
                .map_err(|n| n.wait_time_from(DefaultClock::default().now())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_source: u32, per_token: u32, failures: u32) -> Limits {
        Limits::new(
            LimitsConfig {
                registrations_per_second_per_source: Some(per_source),
                registrations_per_second_per_initial_access_token: Some(per_token),
                failed_authentications_per_minute_per_source: Some(failures),
                authorization_requests_per_minute_per_source: Some(3),
            },
            Some(2),
            Some(1),
        )
    }

    #[test]
    fn authorization_requests_are_limited_per_source() {
        let l = limits(2, 3, 10);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        // 3 per minute: a burst of exactly 3, then refusals; others unaffected.
        let admitted = (0..5)
            .filter(|_| l.check_authorization_source(a).is_ok())
            .count();
        assert_eq!(admitted, 3);
        assert!(l.check_authorization_source(b).is_ok());
    }

    #[test]
    fn registrations_are_limited_per_source_and_token() {
        let l = limits(2, 3, 10);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        // 2 per second with a burst of 2: the first two pass, the rest are refused.
        let admitted = (0..6)
            .filter(|_| l.check_registration_source(a).is_ok())
            .count();
        assert_eq!(admitted, 2, "a burst beyond the rate is refused");
        assert!(
            l.check_registration_source(b).is_ok(),
            "other sources are unaffected"
        );
        let refused = (0..10)
            .filter(|_| l.check_registration_token("iat-1").is_err())
            .count();
        assert_eq!(refused, 7, "a burst of 3 per token");
        assert!(l.check_registration_token("iat-2").is_ok());
        assert!(l.check_anonymous(a).is_ok() && l.check_anonymous(a).is_ok());
        assert!(
            l.check_anonymous(a).is_err(),
            "2 anonymous registrations a minute"
        );
        assert!(
            l.check_anonymous(None).is_err(),
            "no address, no anonymous registration"
        );
        assert!(l.check_statement(a).is_ok() && l.check_statement(a).is_err());
        assert!(l.check_statement(b).is_ok() && l.check_statement(None).is_err());
    }

    #[test]
    fn repeated_failures_block_the_source() {
        let l = limits(100, 100, 3);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..3 {
            assert!(l.check_blocked(a).is_ok());
            l.record_failure(a);
        }
        l.record_failure(a);
        let wait = l.check_blocked(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
        assert!(l.check_blocked(Some(IpAddr::from([10, 0, 0, 9]))).is_ok());
    }
}
