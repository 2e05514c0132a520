//! Charter's only outbound HTTP client: the SSRF-safe fetcher for URLs that
//! strangers choose (`jwks_uri`, `sector_identifier_uri`, software statement
//! issuer keys, Client ID Metadata Documents).
//!
//! A fetch goes through these steps, each refusing on its own:
//!
//! 1. [`vet`](Fetcher::vet)'s URL rules: `https` only (plain `http` only
//!    to an allowlisted host when the operator enabled it), no userinfo,
//!    the host parsed the WHATWG way so `127.1` or `0x7f000001` is seen as
//!    `127.0.0.1`.
//! 2. The address rules: the host is resolved through an injected
//!    [`Resolve`], and *every* address must be [`AddressClass::Global`]
//!    ([`classify`]) or allowlisted ([`FetchConfig::allow_hosts`],
//!    [`FetchConfig::allow_cidrs`]). The connection then goes to exactly the
//!    addresses vetted, so DNS rebinding has no window. `localhost` is
//!    loopback without a lookup (RFC 6761 §6.3).
//! 3. The exchange: connect and total timeouts, no redirects (CIMD §4),
//!    status 200 only, the purpose's content types, and its size cap
//!    enforced while reading ([`Purpose`]).
//! 4. A bounded cache honoring `Cache-Control: max-age` within configured
//!    bounds, a negative cache for failures, forced re-fetches rate-limited
//!    per URL, and a concurrency limit per host. [`Fetcher::stats`] counts.
//!
//! References: OWASP Server-Side Request Forgery Prevention Cheat Sheet;
//! RFC 6890 and the IANA special-purpose address registries; CIMD
//! (draft-ietf-oauth-client-id-metadata-document) §4 and §6.5–6.6; OIDC
//! Dynamic Client Registration §5 (`sector_identifier_uri`).
//!
//! It does not parse what it fetches (JWK Sets are `jose`'s business), and
//! it is the only crate that may open outbound connections.

mod cache;
mod classify;
mod clock;
mod config;
mod error;
mod fetcher;
mod resolve;
mod stats;
mod vet;

pub use bytes::Bytes;
pub use classify::{classify, AddressClass};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{FetchConfig, Purpose};
pub use error::{Error, FetchError};
pub use fetcher::{Fetched, Fetcher};
pub use ipnet::IpNet;
pub use resolve::{Resolve, ResolveError, StaticResolver, SystemResolver};
pub use stats::Stats;
