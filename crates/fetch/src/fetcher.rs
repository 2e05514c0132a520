//! [`Fetcher`]: vetted, capped, cached GETs.
//!
//! One `reqwest` client per scheme, each built so that it cannot reach
//! anything the policy refuses: its only resolver is `PinnedResolver`
//! (which vets and pins), proxies are off (an environment `HTTPS_PROXY`
//! would otherwise receive every request), redirects and retries are off,
//! and compression is not negotiated (so the size cap is the size on the
//! wire, with no decompression bomb behind it). IP-literal URLs are vetted
//! before the request is built because the client connects to literals
//! without asking a resolver.
//!
//! It does not parse what it fetches: callers get bytes of an accepted
//! content type and size, and decide what they mean.

use crate::cache::{freshness, Cache, Key};
use crate::clock::{Clock, SystemClock};
use crate::config::{media_type, FetchConfig, Purpose};
use crate::error::FetchError;
use crate::resolve::Resolve;
use crate::stats::{bump, Counters, Stats};
use crate::vet::{with_url, Checked, PinnedResolver, Policy, Scheme};
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, ACCEPT, AGE, CACHE_CONTROL, CONTENT_TYPE};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A fetched document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The body, at most the purpose's cap.
    pub body: Bytes,
    /// The `Content-Type` as received (one of the purpose's types).
    pub content_type: String,
    /// When it was fetched (from the server, not from the cache).
    pub fetched_at: SystemTime,
    /// When the cached copy expires.
    pub expires_at: SystemTime,
}

/// The only outbound HTTP client. Cheap to clone; clones share the cache,
/// limits and counters.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    config: FetchConfig,
    policy: Arc<Policy>,
    /// [`Policy::public`], for [`Fetcher::get_public`].
    public_policy: Arc<Policy>,
    resolver: Arc<dyn Resolve>,
    clock: Arc<dyn Clock>,
    https: reqwest::Client,
    http: reqwest::Client,
    /// https to global addresses only, whatever the allowlists say.
    public: reqwest::Client,
    cache: Mutex<Cache>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    counters: Counters,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher with the system clock.
    pub fn new(config: FetchConfig, resolver: Arc<dyn Resolve>) -> Result<Self, FetchError> {
        Self::with_clock(config, resolver, Arc::new(SystemClock::new()))
    }

    /// A fetcher with an injected clock (tests move time by hand).
    pub fn with_clock(
        config: FetchConfig,
        resolver: Arc<dyn Resolve>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, FetchError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(FetchError::Config(problems));
        }
        let policy = Arc::new(Policy::new(&config));
        let public_policy = Arc::new(Policy::public());
        let mut roots = Vec::new();
        for pem in &config.root_certificates_pem {
            roots.push(reqwest::Certificate::from_pem(pem).map_err(|e| {
                FetchError::Config(vec![format!(
                    "root_certificates: not a PEM certificate: {e}"
                )])
            })?);
        }
        let client = |scheme: Scheme, policy: &Arc<Policy>| {
            let mut builder = reqwest::Client::builder();
            for root in &roots {
                builder = builder.add_root_certificate(root.clone());
            }
            builder
                .dns_resolver(Arc::new(PinnedResolver {
                    policy: Arc::clone(policy),
                    resolver: Arc::clone(&resolver),
                    scheme,
                }))
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .retry(reqwest::retry::never())
                .referer(false)
                .https_only(scheme == Scheme::Https)
                .connect_timeout(config.connect_timeout)
                .timeout(config.timeout)
                .user_agent(concat!("charter/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| FetchError::Config(vec![format!("HTTP client: {e}")]))
        };
        Ok(Self {
            inner: Arc::new(Inner {
                https: client(Scheme::Https, &policy)?,
                http: client(Scheme::Http, &policy)?,
                public: client(Scheme::Https, &public_policy)?,
                public_policy,
                cache: Mutex::new(Cache::new(config.max_cache_entries)),
                hosts: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                policy,
                resolver,
                clock,
                config,
            }),
        })
    }

    /// Checks `url` and resolves and vets its host, without connecting:
    /// for registration to refuse a `jwks_uri` or `sector_identifier_uri`
    /// at once. A later fetch vets again (the name may resolve elsewhere
    /// by then).
    pub async fn vet(&self, url: &str) -> Result<(), FetchError> {
        let inner = &self.inner;
        inner
            .policy
            .vet(inner.resolver.as_ref(), url)
            .await
            .map(|_| ())
            .inspect_err(|e| inner.counters.failure(e))
    }

    /// The document at `url` for `purpose`, from the cache while fresh.
    /// A recent failure is returned again from the negative cache.
    pub async fn get(&self, url: &str, purpose: Purpose) -> Result<Fetched, FetchError> {
        self.fetch(url, purpose, false).await
    }

    /// Like [`Fetcher::get`] but bypassing the cache, e.g. to re-fetch a
    /// JWK Set once when an assertion names an unknown `kid`. At most once
    /// per `refetch_interval` per URL; a call within the interval is served
    /// like `get` (so from the cache if it holds the URL).
    pub async fn get_fresh(&self, url: &str, purpose: Purpose) -> Result<Fetched, FetchError> {
        self.fetch(url, purpose, true).await
    }

    /// Like [`Fetcher::get`], but for a URL that nobody the operator trusts
    /// chose (a metadata document of an unknown domain): `fetch.allow_hosts`
    /// and `fetch.allow_cidrs` do not apply, so only global addresses over
    /// https are ever contacted, and nothing is cached (the caller keeps
    /// its own copy).
    pub async fn get_public(&self, url: &str, purpose: Purpose) -> Result<Fetched, FetchError> {
        let inner = &self.inner;
        bump(&inner.counters.requests);
        let checked = inner
            .public_policy
            .check_url(url)
            .inspect_err(|e| inner.counters.failure(e))?;
        let _permit = self.slot(&checked).await?;
        self.timed_fetch(url, &checked, purpose, true).await
    }

    /// The host's concurrency slot, waited for at most the fetch timeout.
    async fn slot(&self, checked: &Checked) -> Result<Option<OwnedSemaphorePermit>, FetchError> {
        let timeout = self.inner.config.timeout;
        tokio::time::timeout(timeout, self.host_slot(&checked.host))
            .await
            .map_err(|_| FetchError::Timeout {
                host: checked.host.clone(),
                after: timeout,
            })
            .inspect_err(|e| self.inner.counters.failure(e))
    }

    /// One fetch within the timeout, counted.
    async fn timed_fetch(
        &self,
        raw: &str,
        checked: &Checked,
        purpose: Purpose,
        public: bool,
    ) -> Result<Fetched, FetchError> {
        let inner = &self.inner;
        let timeout = inner.config.timeout;
        let result = tokio::time::timeout(timeout, self.fetch_once(checked, purpose, public))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    host: checked.host.clone(),
                    after: timeout,
                })
            })
            .map_err(|e| with_url(e, raw));
        match &result {
            Ok(_) => bump(&inner.counters.fetched),
            Err(e) => {
                inner.counters.failure(e);
                tracing::debug!(url = raw, purpose = purpose.as_str(), error = ?e, "fetch failed");
            }
        }
        result
    }

    /// Drops the cached entry for `url`, e.g. when the caller found the
    /// document invalid (CIMD §4.4: invalid documents are not cached).
    pub fn forget(&self, url: &str, purpose: Purpose) {
        if let Ok(parsed) = url::Url::parse(url) {
            self.cache().remove(&cache_key(&parsed, purpose));
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let entries = self.cache().len();
        self.inner.counters.snapshot(entries)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, key: &Key) -> Option<Result<Fetched, FetchError>> {
        let now = self.inner.clock.now();
        let hit = self.cache().lookup(key, now)?;
        let counters = &self.inner.counters;
        bump(match hit {
            Ok(_) => &counters.cache_hits,
            Err(_) => &counters.negative_hits,
        });
        Some(hit)
    }

    async fn fetch(&self, raw: &str, purpose: Purpose, fresh: bool) -> Result<Fetched, FetchError> {
        let inner = &self.inner;
        bump(&inner.counters.requests);
        let checked = inner
            .policy
            .check_url(raw)
            .inspect_err(|e| inner.counters.failure(e))?;
        let key = cache_key(&checked.url, purpose);
        let forced = fresh && {
            let now = inner.clock.now();
            let allowed = self
                .cache()
                .try_force(&key, now, inner.config.refetch_interval);
            if !allowed {
                bump(&inner.counters.fresh_rate_limited);
            }
            allowed
        };
        if !forced {
            if let Some(hit) = self.cached(&key) {
                return hit;
            }
        }
        self.fetch_uncached(raw, &checked, purpose, &key, forced)
            .await
    }

    /// Waits for the host's slot, fetches, and caches the outcome.
    async fn fetch_uncached(
        &self,
        raw: &str,
        checked: &Checked,
        purpose: Purpose,
        key: &Key,
        forced: bool,
    ) -> Result<Fetched, FetchError> {
        let inner = &self.inner;
        let _permit = self.slot(checked).await?;
        // Another caller may have fetched it while this one waited.
        if !forced {
            if let Some(hit) = self.cached(key) {
                return hit;
            }
        }
        let result = self.timed_fetch(raw, checked, purpose, false).await;
        let now = inner.clock.now();
        match &result {
            Ok(doc) => {
                self.cache()
                    .insert(key.clone(), Ok(doc.clone()), doc.expires_at);
            }
            Err(e) if purpose.negative_cache() => {
                let mut cache = self.cache();
                // A failed forced re-fetch keeps the good copy it meant to
                // refresh: the keys a client had stay usable.
                let good = matches!(cache.lookup(key, now), Some(Ok(_)));
                if !good && !inner.config.negative_ttl.is_zero() {
                    let until = now + inner.config.negative_ttl;
                    cache.insert(key.clone(), Err(e.clone()), until);
                }
            }
            // CIMD §4.4: a failed metadata document must not be served
            // from the cache, and neither may an older good copy.
            Err(_) => self.cache().remove(key),
        }
        result
    }

    /// One GET, checked and read within the purpose's cap.
    async fn fetch_once(
        &self,
        checked: &Checked,
        purpose: Purpose,
        public: bool,
    ) -> Result<Fetched, FetchError> {
        let inner = &self.inner;
        let host = || checked.host.clone();
        let client = match (public, checked.scheme) {
            (true, _) => &inner.public,
            (false, Scheme::Https) => &inner.https,
            (false, Scheme::Http) => &inner.http,
        };
        bump(&inner.counters.sent);
        let mut response = client
            .get(checked.url.clone())
            .header(ACCEPT, purpose.accept_header())
            .send()
            .await
            .map_err(|e| self.client_error(&e, checked))?;

        let status = response.status();
        if status.is_redirection() {
            // CIMD §4, OIDC DCR §5: never follow; the Location is not read.
            return Err(FetchError::Redirect {
                host: host(),
                status: status.as_u16(),
            });
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status {
                host: host(),
                code: status.as_u16(),
            });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = match content_type {
            Some(ct) if purpose.accepts(&ct) => ct,
            found => {
                return Err(FetchError::ContentType {
                    host: host(),
                    // Bounded: the value ends up in a client-visible message.
                    found: found.map(|ct| media_type(&ct).chars().take(100).collect()),
                    purpose,
                });
            }
        };
        let cap = purpose.cap();
        let too_large = || FetchError::TooLarge { host: host(), cap };
        // A declared length over the cap is refused before reading.
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let ttl = ttl(response.headers(), &inner.config);
        // Read chunk by chunk, keeping at most `cap + 1` bytes: one byte
        // over is enough to know the body is too large.
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.client_error(&e, checked))?
        {
            let room = cap + 1 - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() > cap {
                return Err(too_large());
            }
        }
        let now = inner.clock.now();
        Ok(Fetched {
            body: body.freeze(),
            content_type,
            fetched_at: now,
            expires_at: now + ttl,
        })
    }

    /// A `reqwest` error as a [`FetchError`]: a refusal raised by the
    /// pinned resolver comes back as itself.
    fn client_error(&self, e: &reqwest::Error, checked: &Checked) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(refusal) = err.downcast_ref::<FetchError>() {
                return refusal.clone();
            }
            source = err.source();
        }
        let host = checked.host.clone();
        let detail = error_chain(e);
        if e.is_timeout() {
            // A connection (TCP and TLS handshakes) that timed out hit
            // `connect_timeout`, which is shorter than `timeout`: name the
            // limit that was reached.
            let config = &self.inner.config;
            FetchError::Timeout {
                host,
                after: if e.is_connect() {
                    config.connect_timeout
                } else {
                    config.timeout
                },
            }
        } else if e.is_connect() || e.is_request() {
            FetchError::Connect { host, detail }
        } else {
            FetchError::Body { host, detail }
        }
    }

    /// The concurrency slot for `host`. Semaphores nobody holds or waits
    /// for are dropped as the map grows, so it stays bounded by the hosts
    /// in flight.
    async fn host_slot(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let max = self.inner.config.max_concurrent_per_host;
        let semaphore = {
            let mut hosts = self
                .inner
                .hosts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if hosts.len() >= 256 {
                hosts.retain(|_, s| Arc::strong_count(s) > 1);
            }
            Arc::clone(
                hosts
                    .entry(host.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(max))),
            )
        };
        // The semaphore is never closed, so acquiring cannot fail; if it
        // somehow did, the fetch goes ahead without a slot rather than
        // failing.
        semaphore.acquire_owned().await.ok()
    }
}

/// The URL as parsed (so `127.1` and `127.0.0.1` are one entry), without
/// its fragment, which is never sent.
fn cache_key(url: &url::Url, purpose: Purpose) -> Key {
    let mut url = url.clone();
    url.set_fragment(None);
    (url.to_string(), purpose)
}

fn ttl(headers: &HeaderMap, config: &FetchConfig) -> std::time::Duration {
    let cache_control = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let age = headers.get(AGE).and_then(|v| v.to_str().ok());
    freshness(
        cache_control,
        age,
        (config.cache_min_ttl, config.cache_max_ttl),
    )
}

/// Every message in an error's source chain, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
