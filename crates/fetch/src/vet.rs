//! Vetting: which URLs and addresses may be fetched.
//!
//! [`Policy::check_url`] applies the rules that need no lookup (scheme,
//! userinfo, IP-literal hosts, `localhost`); [`Policy::vet_name`] resolves a
//! name through the injected [`Resolve`] and refuses when *any* address is
//! not allowed (OWASP SSRF Prevention Cheat Sheet: validate every resolved
//! address). [`PinnedResolver`] is the HTTP client's only resolver: it runs
//! `vet_name` and hands the client exactly the addresses it vetted, so the
//! connection goes to a vetted address and there is no window for DNS
//! rebinding between check and use. IP-literal hosts never reach a resolver
//! (the client connects to them directly), which is why `check_url` vets
//! them before any request is built.
//!
//! The allowlist rule is deliberately simple: a host name on `allow_hosts`
//! may resolve to anything; an address inside `allow_cidrs` is allowed
//! whatever name led to it. Everything else must be [`AddressClass::Global`].

use crate::classify::{canonical, classify, AddressClass};
use crate::config::FetchConfig;
use crate::error::FetchError;
use crate::resolve::Resolve;
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use url::{Host, Url};

/// The scheme rule a connection is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Global addresses, or allowlisted ones.
    Https,
    /// Allowlisted only: the host on `allow_hosts`, or every address inside
    /// `allow_cidrs`.
    Http,
}

/// The host of a URL that passed [`Policy::check_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An IP literal, already vetted.
    Literal(IpAddr),
    /// A name still to resolve and vet (by `vet_name`).
    Name(String),
}

/// A URL that passed the checks that need no lookup.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub url: Url,
    pub scheme: Scheme,
    pub target: Target,
    /// The host as the URL spells it (for messages and per-host limits).
    pub host: String,
}

/// The allowlist and scheme rules, from [`FetchConfig`].
#[derive(Debug)]
pub(crate) struct Policy {
    allow_hosts: HashSet<String>,
    allow_cidrs: Vec<IpNet>,
    allow_http: bool,
}

/// A name compared against the allowlist: lowercase, without the final
/// dot of a fully qualified name.
fn normalize(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// RFC 6761 §6.3: `localhost` and every name under it is loopback and must
/// not be sent to a DNS resolver, which might answer otherwise.
fn is_localhost(normalized: &str) -> bool {
    normalized == "localhost" || normalized.ends_with(".localhost")
}

/// The loopback addresses `localhost` stands for.
const LOCALHOST: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

impl Policy {
    pub fn new(config: &FetchConfig) -> Self {
        Self {
            allow_hosts: config.allow_hosts.iter().map(|h| normalize(h)).collect(),
            allow_cidrs: config.allow_cidrs.clone(),
            allow_http: config.allow_http,
        }
    }

    /// The same rules without any allowlist: global addresses over https
    /// only, for URLs nobody the operator trusts chose.
    pub fn public() -> Self {
        Self {
            allow_hosts: HashSet::new(),
            allow_cidrs: Vec::new(),
            allow_http: false,
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allow_hosts.contains(&normalize(host))
    }

    fn cidr_allowed(&self, ip: IpAddr) -> bool {
        let unmapped = canonical(ip);
        self.allow_cidrs
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&unmapped))
    }

    /// Refuses `ip` for `host` unless the rules for `scheme` allow it.
    fn check_addr(&self, host: &str, ip: IpAddr, scheme: Scheme) -> Result<(), FetchError> {
        if self.host_allowed(host) || self.cidr_allowed(ip) {
            return Ok(());
        }
        let class = classify(ip);
        match (scheme, class) {
            (Scheme::Https, AddressClass::Global) => Ok(()),
            // A global address reached over http without an allowlist
            // entry: the scheme, not the address, is what is wrong.
            (Scheme::Http, AddressClass::Global) => Err(FetchError::NotHttps {
                url: format!("http://{host}"),
            }),
            _ => Err(FetchError::NonGlobalAddress {
                host: host.to_owned(),
                addr: ip,
                class,
            }),
        }
    }

    /// The checks that need no lookup: an absolute `https` URL (or `http`
    /// when allowed), no userinfo, and an IP-literal or `localhost` host
    /// vetted on the spot. The `url` crate parses the host as WHATWG URL
    /// does, which turns `127.1`, `2130706433`, `0x7f000001` and
    /// `0177.0.0.1` into `127.0.0.1`, so odd spellings reach the classifier
    /// as the address they mean.
    pub fn check_url(&self, raw: &str) -> Result<Checked, FetchError> {
        let url = Url::parse(raw).map_err(|e| FetchError::InvalidUrl {
            url: raw.to_owned(),
            reason: e.to_string(),
        })?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" if self.allow_http => Scheme::Http,
            _ => {
                return Err(FetchError::NotHttps {
                    url: raw.to_owned(),
                })
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::Userinfo {
                url: raw.to_owned(),
            });
        }
        let (host, target) = match url.host() {
            Some(Host::Ipv4(ip)) => (ip.to_string(), Target::Literal(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (format!("[{ip}]"), Target::Literal(IpAddr::V6(ip))),
            Some(Host::Domain(name)) => match name.parse::<IpAddr>() {
                // Unreachable with `http(s)` URLs (the parser would have
                // made it `Host::Ipv4`), but a literal must never be
                // mistaken for a name.
                Ok(ip) => (name.to_owned(), Target::Literal(ip)),
                Err(_) => (name.to_owned(), Target::Name(name.to_owned())),
            },
            None => {
                return Err(FetchError::InvalidUrl {
                    url: raw.to_owned(),
                    reason: "no host".into(),
                })
            }
        };
        match &target {
            Target::Literal(ip) => self
                .check_addr(&host, *ip, scheme)
                .map_err(|e| with_url(e, raw))?,
            Target::Name(name) => {
                // Refuse `localhost` without asking any resolver.
                if is_localhost(&normalize(name)) {
                    self.check_all(name, &LOCALHOST, scheme)
                        .map_err(|e| with_url(e, raw))?;
                } else if scheme == Scheme::Http
                    && self.allow_cidrs.is_empty()
                    && !self.host_allowed(name)
                {
                    // Nothing this name could resolve to is allowed over
                    // http; say so without a lookup.
                    return Err(FetchError::NotHttps {
                        url: raw.to_owned(),
                    });
                }
            }
        }
        Ok(Checked {
            url,
            scheme,
            target,
            host,
        })
    }

    fn check_all(&self, host: &str, ips: &[IpAddr], scheme: Scheme) -> Result<(), FetchError> {
        ips.iter()
            .try_for_each(|ip| self.check_addr(host, *ip, scheme))
    }

    /// Resolves `host` and returns its addresses if every one is allowed.
    /// `localhost` names are never sent to the resolver.
    pub async fn vet_name(
        &self,
        resolver: &dyn Resolve,
        host: &str,
        scheme: Scheme,
    ) -> Result<Vec<IpAddr>, FetchError> {
        let ips = if is_localhost(&normalize(host)) {
            LOCALHOST.to_vec()
        } else {
            resolver
                .resolve(host)
                .await
                .map_err(|e| FetchError::Resolve {
                    host: host.to_owned(),
                    detail: e.0,
                })?
        };
        if ips.is_empty() {
            return Err(FetchError::NoAddresses {
                host: host.to_owned(),
            });
        }
        self.check_all(host, &ips, scheme)?;
        Ok(ips)
    }

    /// Everything short of connecting: [`Policy::check_url`] and, for a
    /// name, [`Policy::vet_name`].
    pub async fn vet(&self, resolver: &dyn Resolve, raw: &str) -> Result<Checked, FetchError> {
        let checked = self.check_url(raw)?;
        if let Target::Name(name) = &checked.target {
            self.vet_name(resolver, name, checked.scheme)
                .await
                .map_err(|e| with_url(e, raw))?;
        }
        Ok(checked)
    }
}

/// A scheme refusal names the URL the caller gave, not a reconstruction.
pub(crate) fn with_url(e: FetchError, raw: &str) -> FetchError {
    match e {
        FetchError::NotHttps { .. } => FetchError::NotHttps {
            url: raw.to_owned(),
        },
        other => other,
    }
}

/// The HTTP client's resolver: resolves through the injected [`Resolve`],
/// vets, and returns exactly the vetted addresses (port 0: the client puts
/// the URL's port in). A refusal travels back inside the client's error as
/// the [`FetchError`] itself, which the fetcher recovers.
pub(crate) struct PinnedResolver {
    pub policy: Arc<Policy>,
    pub resolver: Arc<dyn Resolve>,
    pub scheme: Scheme,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let resolver = Arc::clone(&self.resolver);
        let scheme = self.scheme;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = policy
                .vet_name(resolver.as_ref(), &host, scheme)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests;
