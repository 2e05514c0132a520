//! The policy file format (a `[policy]` table in the configuration, or a
//! file of its own) and its validation into a [`Policy`]. Every problem is
//! collected, each naming its key, the bad value and what is accepted.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::{parse_duration, Approval, Policy, Profile, RedirectPattern};
use charter_protocol::capabilities::{GRANT_TYPES, TOKEN_ENDPOINT_AUTH_METHODS};
use charter_protocol::{AuthMethod, GrantType};

/// Members a profile may require.
const REQUIRABLE: [&str; 8] = [
    "contacts",
    "software_id",
    "software_version",
    "client_name",
    "client_uri",
    "logo_uri",
    "policy_uri",
    "tos_uri",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: Option<String>,
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub grant_types: Option<Vec<String>>,
    pub token_endpoint_auth_methods: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub default_scope: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub loopback_redirect_uris: Option<bool>,
    pub client_lifetime: Option<String>,
    pub secret_lifetime: Option<String>,
    /// `"never"`, `"always"`, or `"when_scopes_outside"` with `approval_scopes`.
    pub approval: Option<String>,
    pub approval_scopes: Option<Vec<String>>,
    pub max_clients_per_organization: Option<u64>,
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// Resource indicators (RFC 8707) clients may ask tokens for: patterns
    /// as for redirect URIs.
    pub resources: Option<Vec<String>>,
    /// The audience of a token requested without `resource`.
    pub default_resource: Option<String>,
    /// Audiences whose tokens clients under this profile (resource servers)
    /// may introspect, beyond their own tokens.
    pub introspection_audiences: Option<Vec<String>>,
    /// The most a grant's refresh tokens may live (shorter than the
    /// server's `tokens.refresh_token_lifetime` only).
    pub refresh_token_lifetime: Option<String>,
    /// Whether every access token must be DPoP-bound (RFC 9449): token
    /// requests without a proof are refused.
    pub require_dpop: Option<bool>,
    /// Whether every registration (and update) must carry a software
    /// statement from a trusted issuer (RFC 7591 §2.3).
    pub require_software_statement: Option<bool>,
    /// Whether clients must be registered by a workload and authenticate
    /// with a fresh workload identity token as their client assertion.
    pub require_workload_assertion: Option<bool>,
    /// Hosts that URLs the server fetches for a client (`jwks_uri`,
    /// `sector_identifier_uri`) may name: exact names or `*.example.com`.
    pub fetch_hosts: Option<Vec<String>>,
    /// Fetch a client's `jwks_uri` at registration and refuse it unless it
    /// serves a JWK Set with a key the server can use.
    pub check_jwks_uri: Option<bool>,
}

/// Reads and validates a policy file whose top level is the policy table.
pub fn load_policy_file(
    path: &Path,
    defaults: (Duration, Duration),
) -> Result<Policy, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let raw: RawPolicy =
        toml::from_str(&text).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    raw.validate("", defaults)
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
}

impl RawPolicy {
    /// Validates into a [`Policy`]. `prefix` is the key path of this table
    /// (`"policy."` inside the configuration, empty in a policy file);
    /// `defaults` are the client and secret lifetimes of profiles that set none.
    pub fn validate(
        self,
        prefix: &str,
        defaults: (Duration, Duration),
    ) -> Result<Policy, Vec<String>> {
        let mut problems = Vec::new();
        if self.profiles.is_empty() {
            let mut policy = Policy::builtin(defaults.0, defaults.1);
            if let Some(version) = self.version {
                policy.version = version;
            }
            return Ok(policy);
        }
        let version = self.version.unwrap_or_else(|| {
            problems.push(format!("{prefix}version: missing; a policy with profiles needs a version, recorded with every client it admits"));
            String::new()
        });
        let mut profiles = BTreeMap::new();
        for (name, raw) in self.profiles {
            let key = format!("{prefix}profiles.{name}");
            if let Some(profile) = raw.validate(&name, &key, defaults, &mut problems) {
                profiles.insert(name, profile);
            }
        }
        let default_profile = self.default_profile.unwrap_or_else(|| "default".into());
        if !profiles.contains_key(&default_profile) && problems.is_empty() {
            problems.push(format!(
                "{prefix}default_profile: {default_profile:?} is not a defined profile; define [{prefix}profiles.{default_profile}] or name one of: {}",
                profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(Policy {
                version,
                default_profile,
                profiles,
            })
        } else {
            Err(problems)
        }
    }
}

impl RawProfile {
    fn validate(
        self,
        name: &str,
        key: &str,
        defaults: (Duration, Duration),
        problems: &mut Vec<String>,
    ) -> Option<Profile> {
        let before = problems.len();
        let grant_types = self.grant_types.map(|list| {
            list.iter()
                .filter_map(|g| {
                    GrantType::parse(g).or_else(|| {
                        problems.push(format!(
                            "{key}.grant_types: {g:?} is not supported; use {}",
                            names(&GRANT_TYPES, GrantType::as_str)
                        ));
                        None
                    })
                })
                .collect::<Vec<_>>()
        });
        let auth_methods = self.token_endpoint_auth_methods.map(|list| {
            list.iter()
                .filter_map(|m| {
                    AuthMethod::parse(m).or_else(|| {
                        problems.push(format!(
                            "{key}.token_endpoint_auth_methods: {m:?} is not supported; use {}",
                            names(&TOKEN_ENDPOINT_AUTH_METHODS, AuthMethod::as_str)
                        ));
                        None
                    })
                })
                .collect::<Vec<_>>()
        });
        for (field, list) in [
            ("grant_types", grant_types.as_ref().map(Vec::len)),
            (
                "token_endpoint_auth_methods",
                auth_methods.as_ref().map(Vec::len),
            ),
        ] {
            if list == Some(0) && problems.len() == before {
                problems.push(format!(
                    "{key}.{field}: must not be empty; omit the key to allow every supported value"
                ));
            }
        }
        if let (Some(default), Some(scopes)) = (&self.default_scope, &self.scopes) {
            for token in default.split(' ') {
                if !scopes.iter().any(|s| s == token) {
                    problems.push(format!(
                        "{key}.default_scope: {token:?} is not in {key}.scopes"
                    ));
                }
            }
        }
        let redirect_uris = self.redirect_uris.map(|list| {
            list.iter()
                .filter_map(|p| {
                    RedirectPattern::parse(p)
                        .map_err(|e| problems.push(format!("{key}.redirect_uris: {e}")))
                        .ok()
                })
                .collect::<Vec<_>>()
        });
        let mut lifetime = |field: &str, value: Option<String>, default: Duration| match value {
            None => default,
            Some(text) => match parse_duration(&text) {
                Ok(d) if d >= Duration::from_secs(60) => d,
                Ok(_) => {
                    problems.push(format!(
                        "{key}.{field}: {text:?} is shorter than the minimum of 1m"
                    ));
                    default
                }
                Err(e) => {
                    problems.push(format!("{key}.{field}: {e}"));
                    default
                }
            },
        };
        let client_lifetime = lifetime("client_lifetime", self.client_lifetime, defaults.0);
        let refresh_token_lifetime = self
            .refresh_token_lifetime
            .map(|text| lifetime("refresh_token_lifetime", Some(text), Duration::ZERO));
        // An unset secret lifetime follows the default, but never beyond the client's.
        let secret_lifetime = lifetime(
            "secret_lifetime",
            self.secret_lifetime,
            defaults.1.min(client_lifetime),
        );
        if secret_lifetime > client_lifetime {
            problems.push(format!("{key}.secret_lifetime: longer than {key}.client_lifetime; a secret cannot outlive its client"));
        }
        let approval = match (self.approval.as_deref(), self.approval_scopes) {
            (None | Some("never"), None) => Approval::Never,
            (Some("always"), None) => Approval::Always,
            (Some("when_scopes_outside"), Some(scopes)) => Approval::WhenScopesOutside(scopes),
            (Some("when_scopes_outside"), None) => {
                problems.push(format!("{key}.approval_scopes: missing; required when {key}.approval = \"when_scopes_outside\""));
                Approval::Always
            }
            (_, Some(_)) => {
                problems.push(format!("{key}.approval_scopes: only valid with {key}.approval = \"when_scopes_outside\""));
                Approval::Always
            }
            (Some(other), None) => {
                problems.push(format!("{key}.approval: {other:?} is not valid; use \"never\", \"always\" or \"when_scopes_outside\""));
                Approval::Always
            }
        };
        for field in &self.required_fields {
            if !REQUIRABLE.contains(&field.as_str()) {
                problems.push(format!(
                    "{key}.required_fields: {field:?} cannot be required; use any of {}",
                    REQUIRABLE.join(", ")
                ));
            }
        }
        let mut patterns = |field: &str, list: Option<Vec<String>>| -> Vec<RedirectPattern> {
            list.unwrap_or_default()
                .iter()
                .filter_map(|p| {
                    RedirectPattern::parse(p)
                        .map_err(|e| problems.push(format!("{key}.{field}: {e}")))
                        .ok()
                })
                .collect()
        };
        let resources = patterns("resources", self.resources);
        let introspection_audiences =
            patterns("introspection_audiences", self.introspection_audiences);
        if let Some(default) = &self.default_resource {
            let absolute = url::Url::parse(default).is_ok_and(|u| u.fragment().is_none())
                && !default.contains('#');
            if !absolute {
                problems.push(format!(
                    "{key}.default_resource: {default:?} must be an absolute URI without a fragment (RFC 8707 section 2)"
                ));
            }
        }
        if self.max_clients_per_organization == Some(0) {
            problems.push(format!(
                "{key}.max_clients_per_organization: must be at least 1"
            ));
        }
        (problems.len() == before).then(|| Profile {
            name: name.to_owned(),
            grant_types,
            token_endpoint_auth_methods: auth_methods,
            scopes: self.scopes,
            default_scope: self.default_scope,
            redirect_uris,
            loopback_redirect_uris: self.loopback_redirect_uris.unwrap_or(true),
            client_lifetime,
            secret_lifetime,
            approval,
            max_clients_per_organization: self.max_clients_per_organization,
            required_fields: self.required_fields,
            resources,
            default_resource: self.default_resource,
            introspection_audiences,
            refresh_token_lifetime,
            require_dpop: self.require_dpop.unwrap_or(false),
            require_software_statement: self.require_software_statement.unwrap_or(false),
            require_workload_assertion: self.require_workload_assertion.unwrap_or(false),
            check_jwks_uri: self.check_jwks_uri.unwrap_or(false),
            fetch_hosts: self
                .fetch_hosts
                .map(|hosts| hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect()),
        })
    }
}
