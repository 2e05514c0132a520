//! `[client_id_metadata_documents]`: clients whose `client_id` is the https
//! URL of their metadata document (CIMD, the MCP default), and the domain
//! policy that decides what becomes of them.
//!
//! A document's host is matched against `domains` (exact names, or
//! `*.example.com` for any name below `example.com`; the most specific entry
//! wins): a match binds the client to that entry's organization and profile,
//! like an initial access token. A host that matches nothing gets
//! `unknown_domains`: `refuse` (the default: nothing is fetched), `public`
//! (admitted as a public client under `unknown_profile` in
//! `unknown_organization`, with the narrow scopes that profile allows and
//! the user's consent), or `pending` (stored under that profile, pending an
//! administrator's approval).
//!
//! Off by default: discovery advertises `client_id_metadata_document_supported`
//! only when it is on, so that MCP clients fall back to dynamic registration
//! instead of trying documents the server would refuse.

use charter_policy::Policy;
use serde::Deserialize;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetadataDocuments {
    pub enabled: Option<bool>,
    pub unknown_domains: Option<String>,
    pub unknown_profile: Option<String>,
    pub unknown_organization: Option<String>,
    pub unknown_domains_use_fetch_allowlist: Option<bool>,
    #[serde(default)]
    pub domains: Vec<RawTrustedDomain>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustedDomain {
    pub domain: Option<String>,
    pub organization: Option<String>,
    pub profile: Option<String>,
}

/// What becomes of a document whose host no `domains` entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownDomains {
    /// Refused before anything is fetched.
    Refuse,
    /// Admitted as a public client under the unknown-domain profile.
    Public,
    /// Stored pending an administrator's approval.
    Pending,
}

impl UnknownDomains {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownDomains::Refuse => "refuse",
            UnknownDomains::Public => "public",
            UnknownDomains::Pending => "pending",
        }
    }
}

/// A `domains` entry: hosts it covers, and where their clients go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedDomain {
    /// A lowercase DNS name, or `*.` and one (covering every name below it).
    pub domain: String,
    pub organization: String,
    pub profile: String,
}

impl TrustedDomain {
    /// Whether `host` (lowercase, as a URL parser gives it) is covered.
    pub fn covers(&self, host: &str) -> bool {
        match self.domain.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|below| below.len() > 1 && below.ends_with('.')),
            None => host == self.domain,
        }
    }
}

/// Where a document's client goes: its organization and profile, and
/// whether a trusted domain vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentBinding {
    pub organization: String,
    pub profile: String,
    /// `None` for a host no `domains` entry covers.
    pub domain: Option<String>,
    /// What the operator chose for unknown domains, when this is one.
    pub unknown: Option<UnknownDomains>,
}

/// Validated metadata-document settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataDocumentsConfig {
    pub enabled: bool,
    pub unknown_domains: UnknownDomains,
    pub unknown_profile: String,
    pub unknown_organization: String,
    /// Whether documents of unknown domains may be fetched from the hosts
    /// and ranges `[fetch]` allows although not public (an intranet where
    /// developers publish documents). Off: public addresses only, since
    /// nobody the operator trusts chose those URLs.
    pub unknown_domains_use_fetch_allowlist: bool,
    pub domains: Vec<TrustedDomain>,
}

impl Default for MetadataDocumentsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            unknown_domains: UnknownDomains::Refuse,
            unknown_profile: "metadata-documents".into(),
            unknown_organization: "quarantine".into(),
            unknown_domains_use_fetch_allowlist: false,
            domains: Vec::new(),
        }
    }
}

impl MetadataDocumentsConfig {
    /// The binding of a document served from `host`, or `None` when the
    /// feature is off or the host is unknown and refused. The most specific
    /// entry wins: an exact name over a wildcard, a longer wildcard over a
    /// shorter one.
    pub fn binding(&self, host: &str) -> Option<DocumentBinding> {
        if !self.enabled {
            return None;
        }
        let best = self
            .domains
            .iter()
            .filter(|d| d.covers(host))
            .max_by_key(|d| (!d.domain.starts_with("*."), d.domain.len()));
        match (best, self.unknown_domains) {
            (Some(d), _) => Some(DocumentBinding {
                organization: d.organization.clone(),
                profile: d.profile.clone(),
                domain: Some(d.domain.clone()),
                unknown: None,
            }),
            (None, UnknownDomains::Refuse) => None,
            (None, choice) => Some(DocumentBinding {
                organization: self.unknown_organization.clone(),
                profile: self.unknown_profile.clone(),
                domain: None,
                unknown: Some(choice),
            }),
        }
    }

    /// The organizations the server creates at start-up if they are
    /// missing: the unknown-domain one, when unknown domains are admitted.
    pub fn organizations_to_create(&self) -> Vec<String> {
        if self.enabled && self.unknown_domains != UnknownDomains::Refuse {
            vec![self.unknown_organization.clone()]
        } else {
            Vec::new()
        }
    }
}

/// A DNS name as a domain entry may hold it: lowercase letters, digits and
/// hyphens in labels of 1–63 characters, at least two labels, no trailing dot.
fn valid_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

impl RawMetadataDocuments {
    pub(crate) fn validate(
        self,
        policy: Option<&Policy>,
        problems: &mut Vec<String>,
    ) -> MetadataDocumentsConfig {
        const KEY: &str = "client_id_metadata_documents";
        let defaults = MetadataDocumentsConfig::default();
        let enabled = self.enabled.unwrap_or(defaults.enabled);
        let unknown_domains = match self.unknown_domains.as_deref() {
            None | Some("refuse") => UnknownDomains::Refuse,
            Some("public") => UnknownDomains::Public,
            Some("pending") => UnknownDomains::Pending,
            Some(other) => {
                problems.push(format!(
                    "{KEY}.unknown_domains: {other:?} is not one of \"refuse\", \"public\", \"pending\""
                ));
                UnknownDomains::Refuse
            }
        };
        let check_profile = |key: &str, profile: &str, problems: &mut Vec<String>, hint: &str| {
            if let Some(policy) = policy {
                if policy.profile(profile).is_none() {
                    problems.push(format!(
                        "{key}: {profile:?} is not a defined policy profile; define [policy.profiles.{profile}]{hint}"
                    ));
                }
            }
        };
        let unknown_profile = self.unknown_profile.unwrap_or(defaults.unknown_profile);
        let unknown_organization = self
            .unknown_organization
            .unwrap_or(defaults.unknown_organization);
        if unknown_organization.trim().is_empty()
            || unknown_organization.chars().any(char::is_control)
        {
            problems.push(format!(
                "{KEY}.unknown_organization: {unknown_organization:?} must be non-empty printable text"
            ));
        }
        if enabled && unknown_domains != UnknownDomains::Refuse {
            check_profile(
                &format!("{KEY}.unknown_profile"),
                &unknown_profile,
                problems,
                " with narrow scopes, token_endpoint_auth_methods = [\"none\"] and loopback or allowlisted redirect URIs, or name another",
            );
        }
        let mut domains: Vec<TrustedDomain> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (i, raw) in self.domains.into_iter().enumerate() {
            let key = format!("{KEY}.domains[{i}]");
            let before = problems.len();
            let domain = raw.domain.unwrap_or_default();
            let name = domain.strip_prefix("*.").unwrap_or(&domain);
            if !valid_dns_name(name) {
                problems.push(format!(
                    "{key}.domain: {domain:?} must be a lowercase DNS name of at least two labels (app.example), or *. and one (*.example.com), without port or trailing dot"
                ));
            }
            if let Some(first) = seen.iter().position(|d| *d == domain) {
                problems.push(format!(
                    "{key}.domain: {domain:?} is already configured as {KEY}.domains[{first}]"
                ));
            }
            seen.push(domain.clone());
            let organization = match raw.organization {
                Some(o) if !o.trim().is_empty() && !o.chars().any(char::is_control) => o,
                _ => {
                    problems.push(format!(
                        "{key}.organization: missing or empty; the name of the organization its clients belong to"
                    ));
                    String::new()
                }
            };
            let profile = match raw.profile {
                Some(p) if !p.trim().is_empty() => {
                    check_profile(&format!("{key}.profile"), &p, problems, " or name another");
                    p
                }
                _ => {
                    problems.push(format!(
                        "{key}.profile: missing; the [policy] profile its clients are decided under"
                    ));
                    String::new()
                }
            };
            if problems.len() == before {
                domains.push(TrustedDomain {
                    domain,
                    organization,
                    profile,
                });
            }
        }
        MetadataDocumentsConfig {
            enabled,
            unknown_domains,
            unknown_profile,
            unknown_organization,
            unknown_domains_use_fetch_allowlist: self
                .unknown_domains_use_fetch_allowlist
                .unwrap_or(defaults.unknown_domains_use_fetch_allowlist),
            domains,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(d: &str, profile: &str) -> TrustedDomain {
        TrustedDomain {
            domain: d.into(),
            organization: format!("org-{profile}"),
            profile: profile.into(),
        }
    }

    #[test]
    fn wildcards_cover_names_below_only() {
        let d = domain("*.example.com", "p");
        assert!(d.covers("a.example.com"));
        assert!(d.covers("a.b.example.com"));
        assert!(!d.covers("example.com"));
        assert!(!d.covers("badexample.com"));
        assert!(!d.covers(".example.com"));
        let exact = domain("example.com", "p");
        assert!(exact.covers("example.com"));
        assert!(!exact.covers("a.example.com"));
    }

    #[test]
    fn the_most_specific_entry_wins_and_unknown_hosts_follow_the_choice() {
        let mut config = MetadataDocumentsConfig {
            enabled: true,
            domains: vec![
                domain("*.example.com", "wide"),
                domain("*.apps.example.com", "narrow"),
                domain("x.apps.example.com", "exact"),
            ],
            ..Default::default()
        };
        let profile = |c: &MetadataDocumentsConfig, h: &str| c.binding(h).map(|b| b.profile);
        assert_eq!(profile(&config, "a.example.com").as_deref(), Some("wide"));
        assert_eq!(
            profile(&config, "y.apps.example.com").as_deref(),
            Some("narrow")
        );
        assert_eq!(
            profile(&config, "x.apps.example.com").as_deref(),
            Some("exact")
        );
        assert_eq!(profile(&config, "other.test"), None);
        config.unknown_domains = UnknownDomains::Pending;
        let b = config.binding("other.test").unwrap();
        assert_eq!(b.unknown, Some(UnknownDomains::Pending));
        assert_eq!(b.profile, "metadata-documents");
        assert_eq!(b.organization, "quarantine");
        assert_eq!(
            config.organizations_to_create(),
            vec!["quarantine".to_owned()]
        );
        config.enabled = false;
        assert_eq!(config.binding("a.example.com"), None);
        assert!(config.organizations_to_create().is_empty());
    }

    #[test]
    fn every_bad_key_is_named() {
        let raw = RawMetadataDocuments {
            enabled: Some(true),
            unknown_domains: Some("allow".into()),
            unknown_profile: None,
            unknown_organization: Some(" ".into()),
            unknown_domains_use_fetch_allowlist: None,
            domains: vec![
                RawTrustedDomain {
                    domain: Some("Example.com".into()),
                    organization: Some("o".into()),
                    profile: Some("default".into()),
                },
                RawTrustedDomain {
                    domain: Some("example.com:443".into()),
                    organization: None,
                    profile: Some("nope".into()),
                },
                RawTrustedDomain {
                    domain: Some("*.example.com".into()),
                    organization: Some("o".into()),
                    profile: Some("default".into()),
                },
                RawTrustedDomain {
                    domain: Some("*.example.com".into()),
                    organization: Some("o".into()),
                    profile: None,
                },
            ],
        };
        let policy = Policy::builtin(
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(3600),
        );
        let mut problems = Vec::new();
        let config = raw.validate(Some(&policy), &mut problems);
        let all = problems.join("\n");
        for expected in [
            "unknown_domains: \"allow\"",
            "unknown_organization",
            "domains[0].domain: \"Example.com\"",
            "domains[1].domain: \"example.com:443\"",
            "domains[1].organization",
            "domains[1].profile: \"nope\" is not a defined policy profile",
            "domains[3].domain: \"*.example.com\" is already configured as client_id_metadata_documents.domains[2]",
            "domains[3].profile: missing",
        ] {
            assert!(all.contains(expected), "{expected} not in:\n{all}");
        }
        assert_eq!(config.domains.len(), 1);

        let mut problems = Vec::new();
        RawMetadataDocuments {
            enabled: Some(true),
            unknown_domains: Some("public".into()),
            ..Default::default()
        }
        .validate(Some(&policy), &mut problems);
        assert!(
            problems[0].contains(
                "unknown_profile: \"metadata-documents\" is not a defined policy profile"
            ),
            "{problems:?}"
        );
    }
}
