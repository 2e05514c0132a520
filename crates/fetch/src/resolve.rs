//! Name resolution, injectable.
//!
//! The fetcher never lets the HTTP client resolve names on its own: it asks
//! a [`Resolve`], vets every address returned, and hands exactly those to
//! the connection (see `vet`). The server uses [`SystemResolver`]; tests use
//! [`StaticResolver`], so no test ever looks up a name outside the process.

use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// A failed lookup. The message is for logs; the client is told only that
/// the name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

/// Turns a host name into addresses.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// Every address `host` resolves to. `host` is a DNS name as the URL
    /// parser normalized it (lowercase, IDNA), never an IP literal.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError>;
}

/// The operating system's resolver (`getaddrinfo` through
/// `tokio::net::lookup_host`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let addrs = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| ResolveError(e.to_string()))?;
        let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
        ips.dedup();
        Ok(ips)
    }
}

/// A fixed map from names to addresses that records every lookup; unknown
/// names fail. For tests, and for deployments that pin names.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    map: HashMap<String, Vec<IpAddr>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `host` (compared lowercase) to `addrs`.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.map.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }

    /// Every name looked up so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Resolve for StaticResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(host.to_owned());
        self.map
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| ResolveError(format!("{host}: no such name in the static map")))
    }
}
