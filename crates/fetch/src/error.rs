//! The crate's one error enum, [`FetchError`] (also exported as `Error`).
//!
//! Every `Display` message is safe to show the client that supplied the
//! URL: it names the host, the address and its class, or the HTTP status,
//! never resolver or TLS internals (those stay in the `detail` fields,
//! visible through `Debug` for the log). Callers prefix the metadata field,
//! e.g. `jwks_uri: ` + message. Errors are `Clone` because the negative
//! cache hands the same failure to every caller within its lifetime.

use crate::classify::AddressClass;
use crate::config::Purpose;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute URL with a host.
    #[error("{url:?} is not a valid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Not `https` (or `http` to a host the operator did not allowlist).
    #[error("{url} must use https")]
    NotHttps { url: String },
    /// The URL carries a user name or password (RFC 3986 §3.2.1 userinfo).
    #[error("{url} must not contain a user name or password")]
    Userinfo { url: String },
    /// The host is, or resolves to, an address that is not global and not
    /// allowlisted (OWASP SSRF Prevention Cheat Sheet; CIMD §6.5).
    #[error("{}", non_global(.host, .addr, .class))]
    NonGlobalAddress {
        host: String,
        addr: IpAddr,
        class: AddressClass,
    },
    /// The name could not be resolved.
    #[error("{host} could not be resolved")]
    Resolve { host: String, detail: String },
    /// The name resolved to no address at all.
    #[error("{host} has no address")]
    NoAddresses { host: String },
    /// No connection (TCP or TLS) could be established.
    #[error("could not connect to {host}")]
    Connect { host: String, detail: String },
    /// The fetch took longer than the configured timeout.
    #[error("{host} did not answer within {}s", .after.as_secs_f32())]
    Timeout { host: String, after: Duration },
    /// A 3xx: redirects are never followed (CIMD §4).
    #[error("{host} answered with a redirect ({status}); redirects are not followed")]
    Redirect { host: String, status: u16 },
    /// Any status but 200 (CIMD §4.1).
    #[error("{host} answered with status {code}; expected 200")]
    Status { host: String, code: u16 },
    /// A missing or unexpected `Content-Type`.
    #[error("{host} answered with content type {}; expected {}",
        .found.as_deref().unwrap_or("(none)"), .purpose.content_types().join(" or "))]
    ContentType {
        host: String,
        found: Option<String>,
        purpose: Purpose,
    },
    /// The body is larger than the purpose's cap (CIMD §6.6).
    #[error("{host} answered with more than {cap} bytes")]
    TooLarge { host: String, cap: usize },
    /// The body could not be read to the end.
    #[error("the response from {host} could not be read")]
    Body { host: String, detail: String },
    /// The fetcher's configuration is unusable (startup only).
    #[error("fetch configuration: {}", .0.join("; "))]
    Config(Vec<String>),
}

/// The crate's error, under the name every crate uses (STYLE.md).
pub type Error = FetchError;

fn non_global(host: &str, addr: &IpAddr, class: &AddressClass) -> String {
    let article = match class {
        AddressClass::Unspecified | AddressClass::IetfProtocol | AddressClass::Orchid => "an",
        _ => "a",
    };
    // A literal is "is", a name "resolves to": the client sees which of
    // its own inputs was wrong.
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        == Ok(*addr);
    if literal {
        format!("{host} is {article} {class} address; refused")
    } else {
        format!("{host} resolves to {addr}, {article} {class} address; refused")
    }
}

impl FetchError {
    /// A stable, short reason for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl { .. } => "invalid_url",
            FetchError::NotHttps { .. } => "not_https",
            FetchError::Userinfo { .. } => "userinfo",
            FetchError::NonGlobalAddress { .. } => "non_global_address",
            FetchError::Resolve { .. } => "resolve",
            FetchError::NoAddresses { .. } => "no_addresses",
            FetchError::Connect { .. } => "connect",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Redirect { .. } => "redirect",
            FetchError::Status { .. } => "status",
            FetchError::ContentType { .. } => "content_type",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Body { .. } => "body",
            FetchError::Config(_) => "config",
        }
    }

    /// Whether the fetcher refused on its own rules before connecting (as
    /// opposed to a failure of, or an unacceptable answer from, the
    /// server).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FetchError::InvalidUrl { .. }
                | FetchError::NotHttps { .. }
                | FetchError::Userinfo { .. }
                | FetchError::NonGlobalAddress { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_for_the_client() {
        let e = FetchError::NonGlobalAddress {
            host: "x.example".into(),
            addr: "10.0.0.1".parse().unwrap(),
            class: AddressClass::Private,
        };
        assert_eq!(
            e.to_string(),
            "x.example resolves to 10.0.0.1, a private address; refused"
        );
        let e = FetchError::NonGlobalAddress {
            host: "[::1]".into(),
            addr: "::1".parse().unwrap(),
            class: AddressClass::Loopback,
        };
        assert_eq!(e.to_string(), "[::1] is a loopback address; refused");
        let e = FetchError::NonGlobalAddress {
            host: "0.0.0.0".into(),
            addr: "0.0.0.0".parse().unwrap(),
            class: AddressClass::Unspecified,
        };
        assert_eq!(e.to_string(), "0.0.0.0 is an unspecified address; refused");
        let e = FetchError::Resolve {
            host: "x.example".into(),
            detail: "resolver at 10.1.1.1 timed out".into(),
        };
        assert_eq!(e.to_string(), "x.example could not be resolved");
        let e = FetchError::ContentType {
            host: "x.example".into(),
            found: Some("text/html".into()),
            purpose: Purpose::SectorIdentifier,
        };
        assert_eq!(
            e.to_string(),
            "x.example answered with content type text/html; expected application/json"
        );
        let e = FetchError::Timeout {
            host: "x.example".into(),
            after: Duration::from_millis(2500),
        };
        assert_eq!(e.to_string(), "x.example did not answer within 2.5s");
    }
}
