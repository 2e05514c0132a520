//! Registration policy: named profiles that say what a client may claim,
//! and the one decision function every registration path goes through.
//!
//! [`evaluate`] is a pure function of (validated request, profile, current
//! state): no I/O, no clock. It answers admit, admit with substitutions,
//! admit pending approval, or refuse, and every substitution and refusal
//! carries a reason naming the rule. The service layer applies the decision;
//! this crate never stores anything.

mod duration;
mod evaluate;
mod pattern;
mod raw;

pub use duration::parse_duration;

pub use evaluate::{evaluate, Decision, PolicyState};
pub use pattern::RedirectPattern;
pub use raw::{load_policy_file, RawPolicy, RawProfile};

use charter_protocol::{AuthMethod, GrantType};
use std::collections::BTreeMap;
use std::time::Duration;

/// A validated, versioned set of profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Recorded with every client the policy admits.
    pub version: String,
    pub default_profile: String,
    pub profiles: BTreeMap<String, Profile>,
}

/// When a registration needs an administrator's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Never,
    Always,
    /// Approval when the client's scope includes a value outside this set.
    WhenScopesOutside(Vec<String>),
}

/// What a client registered under this profile may claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// `None`: every grant type the server supports.
    pub grant_types: Option<Vec<GrantType>>,
    /// `None`: every method the server supports.
    pub token_endpoint_auth_methods: Option<Vec<AuthMethod>>,
    /// `None`: any scope value.
    pub scopes: Option<Vec<String>>,
    /// Substituted when the client asks for no scope (RFC 7591 §2 lets the
    /// server register a default).
    pub default_scope: Option<String>,
    /// `None`: any redirect URI the protocol rules accept.
    pub redirect_uris: Option<Vec<RedirectPattern>>,
    /// Whether http loopback redirect URIs (RFC 8252 §7.3) are allowed.
    pub loopback_redirect_uris: bool,
    pub client_lifetime: Duration,
    pub secret_lifetime: Duration,
    pub approval: Approval,
    pub max_clients_per_organization: Option<u64>,
    /// Metadata members that must be present, e.g. `contacts`, `software_id`.
    pub required_fields: Vec<String>,
    /// Resource indicators (RFC 8707) a token may be requested for; empty:
    /// only the default audience.
    pub resources: Vec<RedirectPattern>,
    /// The audience of tokens requested without `resource`; `None`: the
    /// issuer itself.
    pub default_resource: Option<String>,
    /// Audiences whose tokens a client under this profile may introspect
    /// (besides its own).
    pub introspection_audiences: Vec<RedirectPattern>,
    /// The longest a grant's refresh tokens live under this profile;
    /// `None`: the server's `tokens.refresh_token_lifetime`.
    pub refresh_token_lifetime: Option<Duration>,
    /// Every access token must be DPoP-bound (RFC 9449 §5).
    pub require_dpop: bool,
    /// Registrations and updates must carry a verified software statement
    /// (RFC 7591 §2.3; checklist DCR-46).
    pub require_software_statement: bool,
    /// Clients must be registered by a workload (a SPIFFE JWT-SVID or a
    /// Kubernetes service-account token) and authenticate at the token
    /// endpoint with a fresh token of that workload as their client
    /// assertion, never with their registered method's credential alone.
    pub require_workload_assertion: bool,
    /// Hosts that `jwks_uri` and `sector_identifier_uri` may name (exact or
    /// `*.suffix`); `None`: any host the fetcher accepts.
    pub fetch_hosts: Option<Vec<String>>,
    /// Registration fetches `jwks_uri` and requires a usable key there.
    pub check_jwks_uri: bool,
}

impl Profile {
    /// Whether a client under this profile may get a token for `resource` now.
    pub fn allows_resource(&self, resource: &str) -> bool {
        self.default_resource.as_deref() == Some(resource)
            || self.resources.iter().any(|p| p.matches(resource))
    }

    /// Whether a client under this profile may introspect tokens for `audience`.
    pub fn may_introspect(&self, audience: &str) -> bool {
        self.introspection_audiences
            .iter()
            .any(|p| p.matches(audience))
    }
}

impl Policy {
    /// The policy in force when the operator configured none: one profile,
    /// `default`, allowing what the protocol rules allow.
    pub fn builtin(client_lifetime: Duration, secret_lifetime: Duration) -> Self {
        let profile = Profile {
            name: "default".into(),
            grant_types: None,
            token_endpoint_auth_methods: None,
            scopes: None,
            default_scope: None,
            redirect_uris: None,
            loopback_redirect_uris: true,
            client_lifetime,
            secret_lifetime,
            approval: Approval::Never,
            max_clients_per_organization: None,
            required_fields: Vec::new(),
            resources: Vec::new(),
            default_resource: None,
            introspection_audiences: Vec::new(),
            refresh_token_lifetime: None,
            require_dpop: false,
            require_software_statement: false,
            require_workload_assertion: false,
            fetch_hosts: None,
            check_jwks_uri: false,
        };
        Self {
            version: "builtin".into(),
            default_profile: "default".into(),
            profiles: BTreeMap::from([("default".into(), profile)]),
        }
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }
}
