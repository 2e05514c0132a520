//! What the operator configures ([`FetchConfig`]) and what each fetch is
//! for ([`Purpose`]: its size cap and accepted content types).
//!
//! `FetchConfig` is a plain struct of real types with safe defaults; the
//! `config` crate reads the TOML and builds it, and folds
//! [`FetchConfig::problems`] into its own list of problems.

use crate::error::FetchError;
use ipnet::IpNet;
use std::time::Duration;

/// The fetcher's settings. `Default` is the production setting: https
/// only, no allowlist, short timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Host names (exact, case-insensitive, trailing dot ignored) that may
    /// be fetched whatever they resolve to, including `localhost`. For
    /// operators who run, say, a JWKS server on a private network. Empty by
    /// default.
    pub allow_hosts: Vec<String>,
    /// Address ranges that may be fetched although not global, for any
    /// host name that resolves into them (an IPv4-mapped IPv6 address is
    /// matched as its IPv4 address). Empty by default. Tests allow
    /// `127.0.0.0/8` to reach a loopback server.
    pub allow_cidrs: Vec<IpNet>,
    /// Permits `http` URLs, but only to an allowlisted host: a name in
    /// `allow_hosts`, or one whose every address (or the literal) lies in
    /// `allow_cidrs`. Off by default; never use plain http across a network
    /// you do not control.
    pub allow_http: bool,
    /// Time allowed for name resolution and the TCP and TLS handshakes.
    /// Default 2 s.
    pub connect_timeout: Duration,
    /// Time allowed for a whole fetch: resolution, connection, request and
    /// reading the body. Also the longest a fetch waits for its host's
    /// concurrency slot. Default 5 s.
    pub timeout: Duration,
    /// The shortest time a successful response is cached, whatever its
    /// `Cache-Control` says (also used for `no-cache`, `no-store` and
    /// responses without `max-age`), so a client cannot make Charter fetch
    /// on every request. Default 60 s.
    pub cache_min_ttl: Duration,
    /// The longest time a successful response is cached, whatever its
    /// `max-age`, so key rotation at the client is seen within a day at
    /// the latest. Default 24 h.
    pub cache_max_ttl: Duration,
    /// How long a failure is remembered, so a failing URL is not fetched
    /// again on every request. Zero disables the negative cache. Metadata
    /// documents are never negatively cached (CIMD §4.4). Default 30 s.
    pub negative_ttl: Duration,
    /// Cached responses and failures kept at most; the oldest entry is
    /// evicted first. Default 1024.
    pub max_cache_entries: usize,
    /// Fetches in flight to one host at most; more wait (within `timeout`).
    /// Default 4.
    pub max_concurrent_per_host: usize,
    /// The shortest interval between two forced re-fetches
    /// ([`crate::Fetcher::get_fresh`]) of the same URL, so a client sending
    /// assertions with unknown key ids cannot make Charter hammer its
    /// `jwks_uri`. Default 30 s.
    pub refetch_interval: Duration,
    /// Extra trust anchors (PEM certificates) besides the built-in web
    /// roots, for servers inside an operator's own PKI (and tests).
    pub root_certificates_pem: Vec<Vec<u8>>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            allow_cidrs: Vec::new(),
            allow_http: false,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            cache_min_ttl: Duration::from_secs(60),
            cache_max_ttl: Duration::from_secs(24 * 3600),
            negative_ttl: Duration::from_secs(30),
            max_cache_entries: 1024,
            max_concurrent_per_host: 4,
            refetch_interval: Duration::from_secs(30),
            root_certificates_pem: Vec::new(),
        }
    }
}

impl FetchConfig {
    /// The checks a fetch of `url` makes that need no name lookup, under
    /// these settings: the scheme, no userinfo, and an IP-literal or
    /// `localhost` host vetted against the address rules and allowlists.
    /// For configuration that names a URL (a software statement issuer's
    /// `jwks_uri`), so that one the fetcher would always refuse stops the
    /// server at start-up. A name is not resolved here: the fetcher vets it
    /// at every fetch.
    pub fn check_url(&self, url: &str) -> Result<(), FetchError> {
        crate::vet::Policy::new(self).check_url(url).map(|_| ())
    }

    /// Every problem with these settings, each naming the field (relative
    /// to the fetcher's section), the bad value and what is accepted. Empty
    /// when the settings are usable; [`crate::Fetcher::new`] refuses
    /// otherwise.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("timeout", self.timeout),
        ] {
            if value.is_zero() {
                problems.push(format!("{key}: 0s; must be more than zero"));
            }
        }
        if self.connect_timeout > self.timeout {
            problems.push(format!(
                "connect_timeout: {:?}; must not exceed timeout ({:?})",
                self.connect_timeout, self.timeout
            ));
        }
        if self.cache_min_ttl > self.cache_max_ttl {
            problems.push(format!(
                "cache_min_ttl: {:?}; must not exceed cache_max_ttl ({:?})",
                self.cache_min_ttl, self.cache_max_ttl
            ));
        }
        if self.max_cache_entries == 0 {
            problems.push("max_cache_entries: 0; must be at least 1".into());
        }
        if self.max_concurrent_per_host == 0 {
            problems.push("max_concurrent_per_host: 0; must be at least 1".into());
        }
        for (i, host) in self.allow_hosts.iter().enumerate() {
            let bad = host.is_empty()
                || host.contains(['/', ':', '@', ' ', '*'])
                || host.parse::<std::net::IpAddr>().is_ok();
            if bad {
                problems.push(format!(
                    "allow_hosts[{i}]: {host:?}; expected a host name (put addresses in allow_cidrs)"
                ));
            }
        }
        problems
    }
}

/// What a fetched document is for. Each purpose has its own size cap and
/// accepted content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// A client's `jwks_uri` (RFC 7591 §2): a JWK Set (RFC 7517 §5).
    JwkSet,
    /// A `sector_identifier_uri` (OIDC Dynamic Client Registration §5): a
    /// JSON array of redirect URIs.
    SectorIdentifier,
    /// A Client ID Metadata Document (CIMD §4; 5 KiB per CIMD §6.6).
    MetadataDocument,
    /// A trusted software statement issuer's `jwks_uri` (RFC 7591 §2.3).
    SoftwareStatementKeys,
}

impl Purpose {
    /// The largest body accepted, in bytes.
    pub fn cap(self) -> usize {
        match self {
            Purpose::JwkSet | Purpose::SoftwareStatementKeys | Purpose::SectorIdentifier => {
                64 * 1024
            }
            Purpose::MetadataDocument => 5 * 1024,
        }
    }

    /// The media types accepted (parameters such as `charset` are ignored).
    pub fn content_types(self) -> &'static [&'static str] {
        match self {
            Purpose::JwkSet | Purpose::SoftwareStatementKeys => {
                &["application/json", "application/jwk-set+json"]
            }
            Purpose::SectorIdentifier => &["application/json"],
            // CIMD §4.1 also admits a more specific `+json` type.
            Purpose::MetadataDocument => &["application/json", "application/*+json"],
        }
    }

    /// Whether `content_type` (a `Content-Type` header value) is accepted.
    pub fn accepts(self, content_type: &str) -> bool {
        let essence = media_type(content_type);
        self.content_types()
            .iter()
            .any(|t| match t.strip_prefix("application/*") {
                // `application/*+json`: any application subtype with a `+json`
                // suffix (RFC 6839 §3.1).
                Some(suffix) => {
                    essence.starts_with("application/")
                        && essence.ends_with(suffix)
                        && essence.len() > "application/".len() + suffix.len()
                }
                None => essence == *t,
            })
    }

    /// Whether a failure of this fetch is remembered for
    /// [`FetchConfig::negative_ttl`]. Not for metadata documents: CIMD §4.4
    /// forbids caching errors, so the next authorization request fetches
    /// again.
    pub fn negative_cache(self) -> bool {
        self != Purpose::MetadataDocument
    }

    /// The value of the `Accept` header sent.
    pub(crate) fn accept_header(self) -> &'static str {
        match self {
            Purpose::JwkSet | Purpose::SoftwareStatementKeys => {
                "application/jwk-set+json, application/json"
            }
            Purpose::SectorIdentifier | Purpose::MetadataDocument => "application/json",
        }
    }

    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::JwkSet => "jwk_set",
            Purpose::SectorIdentifier => "sector_identifier",
            Purpose::MetadataDocument => "metadata_document",
            Purpose::SoftwareStatementKeys => "software_statement_keys",
        }
    }
}

/// The media type of a `Content-Type` value, lowercase, without parameters
/// (RFC 9110 §8.3.1).
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(purpose: Purpose, content_type: &str, expected: bool) {
        assert_eq!(purpose.accepts(content_type), expected, "{content_type}");
    }

    #[test]
    fn content_types_ignore_parameters_and_case() {
        use Purpose::*;
        check(JwkSet, "application/json", true);
        check(JwkSet, "application/json; charset=utf-8", true);
        check(JwkSet, "Application/JSON ;charset=UTF-8", true);
        check(JwkSet, "application/jwk-set+json", true);
        check(JwkSet, "text/html", false);
        check(JwkSet, "application/jsonx", false);
        check(JwkSet, "", false);
        check(SoftwareStatementKeys, "application/jwk-set+json", true);
        check(SectorIdentifier, "application/json", true);
        check(SectorIdentifier, "application/jwk-set+json", false);
        check(MetadataDocument, "application/json", true);
        check(MetadataDocument, "application/example+json", true);
        check(MetadataDocument, "application/+json", false);
        check(MetadataDocument, "text/x+json", false);
        check(MetadataDocument, "application/json-seq", false);
    }

    #[test]
    fn caps_per_purpose() {
        assert_eq!(Purpose::JwkSet.cap(), 65_536);
        assert_eq!(Purpose::SoftwareStatementKeys.cap(), 65_536);
        assert_eq!(Purpose::SectorIdentifier.cap(), 65_536);
        assert_eq!(Purpose::MetadataDocument.cap(), 5_120);
    }

    #[test]
    fn check_url_applies_the_rules_that_need_no_lookup() {
        let strict = FetchConfig::default();
        for ok in [
            "https://keys.example.com/jwks",
            "https://keys.internal/jwks",
            "https://8.8.8.8/jwks",
        ] {
            assert_eq!(strict.check_url(ok), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            ("http://keys.example.com/jwks", "not_https"),
            ("https://u:p@keys.example.com/jwks", "userinfo"),
            ("https://127.0.0.1/jwks", "non_global_address"),
            ("https://0x7f000001/jwks", "non_global_address"),
            ("https://localhost/jwks", "non_global_address"),
            ("https://[fd00::1]/jwks", "non_global_address"),
            ("not a url", "invalid_url"),
        ] {
            let e = strict.check_url(bad).expect_err(bad);
            assert_eq!(e.reason(), reason, "{bad}: {e}");
        }
        let allowing = FetchConfig {
            allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
            allow_hosts: vec!["localhost".into()],
            ..FetchConfig::default()
        };
        assert_eq!(allowing.check_url("https://127.0.0.1:8443/jwks"), Ok(()));
        assert_eq!(allowing.check_url("https://localhost/jwks"), Ok(()));
    }

    #[test]
    fn default_config_has_no_problems() {
        assert!(FetchConfig::default().problems().is_empty());
    }

    #[test]
    fn problems_name_every_bad_field() {
        let config = FetchConfig {
            timeout: Duration::ZERO,
            cache_min_ttl: Duration::from_secs(10),
            cache_max_ttl: Duration::from_secs(5),
            max_cache_entries: 0,
            max_concurrent_per_host: 0,
            allow_hosts: vec!["10.0.0.1".into(), "ok.example".into(), "a/b".into()],
            ..FetchConfig::default()
        };
        let problems = config.problems();
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "timeout",
                "connect_timeout",
                "cache_min_ttl",
                "max_cache_entries",
                "max_concurrent_per_host",
                "allow_hosts[0]",
                "allow_hosts[2]",
            ],
            "{problems:?}"
        );
    }
}
