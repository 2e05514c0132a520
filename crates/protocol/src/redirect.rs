//! Redirect URI rules (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.6,
//! OIDC DCR §2 `application_type`).
//!
//! URIs are checked and stored exactly as the client sent them: matching at
//! the authorization endpoint is a code-point comparison (OIDC DCR §6), so
//! the server never normalizes one. The `url` crate follows WHATWG parsing,
//! which silently repairs many malformed inputs; the raw-text checks here
//! refuse those inputs instead of accepting a repaired version.

use crate::metadata::ApplicationType;

const MAX_URI_LEN: usize = 2000;

/// Hosts that name the loopback interface literally (RFC 8252 §7.3, §8.3).
pub fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// Whether `raw` uses only characters RFC 3986 allows in a URI (unreserved,
/// reserved, and `%` followed by two hex digits). WHATWG parsing would
/// silently percent-encode or strip the others; such input is refused.
fn is_rfc3986_text(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        if !allowed {
            return false;
        }
        i += 1;
    }
    true
}

/// The scheme and the raw `//authority` host of a URI, without the port.
fn split_scheme_host(raw: &str) -> Option<(&str, Option<&str>)> {
    let (scheme, rest) = raw.split_once(':')?;
    let Some(rest) = rest.strip_prefix("//") else {
        return Some((scheme, None));
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = if authority.starts_with('[') {
        authority.find(']').map(|end| &authority[..=end])?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    Some((scheme, Some(host)))
}

/// Common checks for any absolute URI member: length, characters, parse,
/// no user information. Returns the parsed URL.
pub(crate) fn check_absolute(raw: &str) -> Result<url::Url, String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > MAX_URI_LEN {
        return Err(format!("is longer than {MAX_URI_LEN} characters"));
    }
    if !is_rfc3986_text(raw) {
        return Err("contains characters RFC 3986 does not allow in a URI (whitespace, quotes, <>{}|^`, backslash, non-ASCII or a bad %-escape)".into());
    }
    let url = url::Url::parse(raw).map_err(|_| "is not an absolute URI".to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information".into());
    }
    Ok(url)
}

/// An `https` URI the server or a browser may dereference (`jwks_uri`,
/// `logo_uri`, `initiate_login_uri`, …).
pub(crate) fn check_https_uri(raw: &str, allow_fragment: bool) -> Result<(), String> {
    let url = check_absolute(raw)?;
    if url.scheme() != "https" || !raw.starts_with("https://") {
        return Err("must be an https URI".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !allow_fragment && url.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    Ok(())
}

/// One redirect URI under the rules of the client's application type.
pub(crate) fn check_redirect_uri(raw: &str, app: ApplicationType) -> Result<(), String> {
    let url = check_absolute(raw)?;
    if url.fragment().is_some() {
        return Err("must not contain a fragment (RFC 6749 §3.1.2)".into());
    }
    let (scheme, host) = split_scheme_host(raw).ok_or("is not an absolute URI")?;
    match (scheme, app) {
        ("https", ApplicationType::Web) => {
            if host.is_none_or(str::is_empty) {
                return Err("must be of the form https://host/path".into());
            }
            Ok(())
        }
        ("https", ApplicationType::Native) => Err(
            "native clients may register only private-use scheme or http loopback redirect URIs (OIDC DCR §2)"
                .into(),
        ),
        ("http", _) => match host {
            Some(h) if is_loopback_host(h) => Ok(()),
            _ => Err("http is allowed only for the loopback hosts 127.0.0.1, [::1] and localhost (RFC 9700 §2.6, RFC 8252 §7.3)".into()),
        },
        (_, ApplicationType::Web) => Err(
            "web clients must use https redirect URIs (http only on loopback); private-use schemes need application_type \"native\""
                .into(),
        ),
        (scheme, ApplicationType::Native) => {
            // RFC 8252 §7.1 and OAuth 2.1: private-use schemes are reverse
            // domain names, which keeps them collision-free and excludes
            // dangerous schemes such as javascript: or data:.
            if !scheme.contains('.') {
                return Err(format!(
                    "private-use scheme \"{scheme}\" must be a reverse domain name such as com.example.app (RFC 8252 §7.1)"
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApplicationType::{Native, Web};

    fn check(uri: &str, app: ApplicationType, ok: bool) {
        let got = check_redirect_uri(uri, app);
        assert_eq!(got.is_ok(), ok, "{uri} as {app:?}: {got:?}");
    }

    #[test]
    fn web_redirect_uris() {
        check("https://app.example.com/cb", Web, true);
        check("https://app.example.com/cb?x=1", Web, true);
        check("http://127.0.0.1:8080/cb", Web, true);
        check("http://[::1]/cb", Web, true);
        check("http://localhost:3000/callback", Web, true);
        check("http://app.example.com/cb", Web, false); // DCR-24
        check("https://app.example.com/cb#frag", Web, false); // DCR-22
        check("https://app.example.com/cb#", Web, false);
        check("/cb", Web, false); // DCR-23
        check("app.example.com/cb", Web, false);
        check("com.example.app:/cb", Web, false);
        check("https:app.example.com/cb", Web, false); // WHATWG would repair this
        check("https://user:pw@app.example.com/cb", Web, false);
        check("https://app.example.com/c b", Web, false);
        check("https://app.example.com\\cb", Web, false);
        check("http://127.1/cb", Web, false); // loopback must be literal
        check("http://127.0.0.1.evil.example/cb", Web, false);
        check("http://localhost.evil.example/cb", Web, false);
        check("javascript:alert(1)", Web, false);
        check("https://app.example.com/cb?q=\"x\"", Web, false);
        check("https://app.example.com/<cb>", Web, false);
        check("https://app.example.com/c%zzb", Web, false);
        check("https://app.example.com/c%20b", Web, true);
        check("https://app.example.com/{cb}", Web, false);
        check("", Web, false);
    }

    #[test]
    fn native_redirect_uris() {
        check("com.example.app:/oauth2redirect", Native, true); // RFC 8252 §7.1
        check("http://127.0.0.1/cb", Native, true); // RFC 8252 §7.3
        check("http://[::1]:49152/cb", Native, true);
        check("http://localhost/cb", Native, true); // OIDC DCR errata 2
        check("myapp:/cb", Native, false); // DCR-25
        check("https://app.example.com/cb", Native, false); // OIDR-05
        check("http://app.example.com/cb", Native, false);
        check("com.example.app:/cb#x", Native, false);
    }

    #[test]
    fn https_uris() {
        assert!(check_https_uri("https://c.example/jwks", false).is_ok());
        assert!(check_https_uri("http://c.example/jwks", false).is_err()); // OIDR-08
        assert!(check_https_uri("https://c.example/jwks#k", false).is_err());
        assert!(check_https_uri("https://c.example/about#team", true).is_ok());
        assert!(check_https_uri("https:c.example", true).is_err());
    }
}
