//! End-to-end tests of the fetcher against loopback servers.
//!
//! Network rules: servers listen on 127.0.0.1:0 only, and names are
//! resolved by a `StaticResolver`, so no outside name is ever looked up
//! and the process never connects to a non-loopback address. Names mapped
//! to private or metadata addresses are refused before any connection,
//! which is exactly what those tests show.

mod caching;
mod exchange;
mod refusals;
mod server;

use charter_fetch::{FetchConfig, Fetcher, ManualClock, StaticResolver};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The names tests use: `jwks.test` is the loopback server; the others
/// resolve to addresses that must be refused.
pub fn resolver() -> StaticResolver {
    StaticResolver::new()
        .with("jwks.test", &[ip("127.0.0.1")])
        .with("evil.test", &[ip("10.0.0.1")])
        .with("metadata.test", &[ip("169.254.169.254")])
        .with("mixed.test", &[ip("127.0.0.1"), ip("192.168.1.1")])
        .with("mapped.test", &[ip("::ffff:127.0.0.1")])
}

/// The test-only setting that lets the fetcher reach the loopback server.
pub fn loopback_config() -> FetchConfig {
    FetchConfig {
        allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        allow_http: true,
        ..FetchConfig::default()
    }
}

pub struct Setup {
    pub fetcher: Fetcher,
    pub resolver: StaticResolver,
    pub clock: ManualClock,
}

pub fn setup(config: FetchConfig) -> Setup {
    let resolver = resolver();
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let fetcher =
        Fetcher::with_clock(config, Arc::new(resolver.clone()), Arc::new(clock.clone())).unwrap();
    Setup {
        fetcher,
        resolver,
        clock,
    }
}
