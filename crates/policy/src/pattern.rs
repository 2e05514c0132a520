//! Redirect URI patterns of a profile: an exact URI, or an https origin
//! whose host may start with one `*.` label and whose path is a prefix.
//!
//! `https://app.example.com/cb` matches only itself. A pattern ending in
//! `/` is a prefix: `https://*.example.com/oauth/` matches
//! `https://a.example.com/oauth/cb` but not `https://example.com/oauth/cb`
//! (the wildcard is exactly one label) nor `https://a.b.example.com/oauth/cb`.

/// One allowed redirect URI form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPattern {
    text: String,
    wildcard_host: bool,
    prefix: bool,
}

impl RedirectPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("https://")
            .ok_or_else(|| format!("{text:?} must start with https:// (loopback and private-use URIs have their own keys)"))?;
        if text.contains(['#', '?']) {
            return Err(format!("{text:?} must not contain a query or fragment"));
        }
        let wildcard_host = rest.starts_with("*.");
        if rest.trim_start_matches("*.").contains('*') {
            return Err(format!(
                "{text:?}: '*' is allowed only as the whole first host label"
            ));
        }
        let host_end = rest.find('/').unwrap_or(rest.len());
        if host_end == 0 || (wildcard_host && host_end <= 2) {
            return Err(format!("{text:?} has no host"));
        }
        if !text.ends_with('/') && wildcard_host {
            return Err(format!(
                "{text:?}: a wildcard host needs a path prefix ending in '/'"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            wildcard_host,
            prefix: text.ends_with('/'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a (protocol-valid) redirect URI matches, code point for code point.
    pub fn matches(&self, uri: &str) -> bool {
        if !self.wildcard_host {
            return if self.prefix {
                uri.starts_with(&self.text)
            } else {
                uri == self.text
            };
        }
        // https://*.SUFFIX → the URI is https://LABEL.SUFFIX with LABEL one
        // DNS label (no dots, non-empty).
        let (Some(pattern_rest), Some(uri_rest)) = (
            self.text.strip_prefix("https://*."),
            uri.strip_prefix("https://"),
        ) else {
            return false;
        };
        let Some((label, after)) = uri_rest.split_once('.') else {
            return false;
        };
        let label_ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-');
        label_ok && after.starts_with(pattern_rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, uri: &str, expected: bool) {
        let p = RedirectPattern::parse(pattern).unwrap();
        assert_eq!(p.matches(uri), expected, "{pattern} vs {uri}");
    }

    #[test]
    fn exact_and_prefix() {
        check(
            "https://app.example.com/cb",
            "https://app.example.com/cb",
            true,
        );
        check(
            "https://app.example.com/cb",
            "https://app.example.com/cb/",
            false,
        );
        check(
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            false,
        );
        check(
            "https://app.example.com/oauth/",
            "https://app.example.com/oauth/cb",
            true,
        );
        check(
            "https://app.example.com/oauth/",
            "https://app.example.com/oauthx",
            false,
        );
        check(
            "https://app.example.com/",
            "https://app.example.com.evil.example/",
            false,
        );
    }

    #[test]
    fn wildcard_is_one_label() {
        check(
            "https://*.example.com/cb/",
            "https://a.example.com/cb/x",
            true,
        );
        check(
            "https://*.example.com/cb/",
            "https://example.com/cb/x",
            false,
        );
        check(
            "https://*.example.com/cb/",
            "https://a.b.example.com/cb/x",
            false,
        );
        check(
            "https://*.example.com/cb/",
            "https://a.example.com.evil.example/cb/x",
            false,
        );
        check(
            "https://*.example.com/cb/",
            "https://a.example.com/other",
            false,
        );
    }

    #[test]
    fn bad_patterns() {
        for bad in [
            "http://app.example.com/cb",
            "https://*.example.com/cb",
            "https://a.*.example.com/",
            "https:///cb",
            "https://app.example.com/cb#x",
        ] {
            assert!(RedirectPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
