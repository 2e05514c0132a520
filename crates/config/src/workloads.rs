//! `[workload_identity]`: the SPIFFE trust domains and Kubernetes clusters
//! whose workload tokens (JWT-SVIDs, projected service-account tokens) may
//! register clients instead of an initial access token, each mapped to the
//! organization its clients belong to and the policy profile they are
//! decided under (issue 6, checklist §10).
//!
//! A trust source's keys are given inline (`jwks`: a SPIFFE bundle, or the
//! cluster issuer's JWK Set) and read into [`PublicKey`]s here, so a bad key
//! stops the server at start-up; or as a `jwks_uri` (a SPIFFE bundle
//! endpoint, or the cluster's `/openid/v1/jwks`) fetched through the
//! outbound fetcher when a token arrives. Tokens themselves are verified by
//! `charter_jose::workload`, and trust sources are looked up by the
//! service's `workloads.rs`.

use charter_fetch::FetchConfig;
use charter_jose::{spiffe_bundle_keys, valid_trust_domain, PublicKey, WorkloadKind};
use charter_policy::Policy;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The longest a workload token may live unless configured otherwise.
/// Kubernetes projects service-account tokens for an hour by default
/// (kubelets rotate them at 80 % of their lifetime, at most every 24 h);
/// SPIRE issues JWT-SVIDs for minutes.
pub const DEFAULT_MAX_WORKLOAD_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkloadIdentity {
    pub enabled: Option<bool>,
    pub max_token_lifetime: Option<String>,
    #[serde(default)]
    pub trust_sources: Vec<RawTrustSource>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustSource {
    /// `"spiffe"` or `"kubernetes"`.
    pub kind: Option<String>,
    /// SPIFFE: the trust domain, e.g. `prod.example`.
    pub trust_domain: Option<String>,
    /// Kubernetes: the cluster's service-account issuer, compared exactly.
    pub issuer: Option<String>,
    /// A JWK Set (a SPIFFE bundle for `spiffe`): a table with `keys`, or
    /// the JSON text of one.
    pub jwks: Option<Value>,
    /// Where the keys are published instead (https, through the fetcher).
    pub jwks_uri: Option<String>,
    pub organization: Option<String>,
    pub profile: Option<String>,
    /// The `aud` tokens must carry; the server's issuer when omitted.
    pub audience: Option<String>,
}

/// Validated workload identity settings.
#[derive(Debug, Clone)]
pub struct WorkloadIdentityConfig {
    /// When off, no workload token is accepted, at registration or at the
    /// token endpoint (the trust sources are still validated).
    pub enabled: bool,
    /// The longest a token may live (`exp` from `iat`, and from now).
    pub max_token_lifetime: Duration,
    pub trust_sources: Vec<WorkloadTrustSource>,
}

impl Default for WorkloadIdentityConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_token_lifetime: DEFAULT_MAX_WORKLOAD_TOKEN_LIFETIME,
            trust_sources: Vec::new(),
        }
    }
}

impl WorkloadIdentityConfig {
    /// The trust source for `kind` tokens from the trust domain or issuer
    /// `trust` (compared exactly); `None` when none is configured or the
    /// feature is off.
    pub fn source(&self, kind: WorkloadKind, trust: &str) -> Option<&WorkloadTrustSource> {
        if !self.enabled {
            return None;
        }
        self.trust_sources
            .iter()
            .find(|s| s.kind == kind && s.trust == trust)
    }
}

/// A SPIFFE trust domain or a Kubernetes cluster whose workloads register
/// clients into `organization` under `profile`.
#[derive(Debug, Clone)]
pub struct WorkloadTrustSource {
    pub kind: WorkloadKind,
    /// The trust domain (SPIFFE) or the issuer (Kubernetes).
    pub trust: String,
    pub keys: WorkloadKeys,
    /// The name of the organization its clients belong to; it must exist
    /// when a token is presented.
    pub organization: String,
    pub profile: String,
    /// The audience its tokens must name; `None`: the server's issuer.
    pub audience: Option<String>,
}

impl WorkloadTrustSource {
    /// How the source is named in logs and audit entries.
    pub fn describe(&self) -> String {
        match self.kind {
            WorkloadKind::Spiffe => format!("spiffe trust domain {:?}", self.trust),
            WorkloadKind::Kubernetes => format!("kubernetes issuer {:?}", self.trust),
        }
    }
}

/// Where a trust source's public keys come from.
#[derive(Debug, Clone)]
pub enum WorkloadKeys {
    /// Keys given in the configuration.
    Inline(Vec<PublicKey>),
    /// A SPIFFE bundle endpoint or a cluster's JWK Set URL.
    JwksUri(String),
}

impl RawWorkloadIdentity {
    /// Validates every trust source; `policy` is `None` when the policy
    /// itself is invalid (its problems are reported already).
    pub(crate) fn validate(
        self,
        policy: Option<&Policy>,
        fetch: &FetchConfig,
        problems: &mut Vec<String>,
    ) -> WorkloadIdentityConfig {
        let enabled = self.enabled.unwrap_or(false);
        let max_token_lifetime = crate::duration_key(
            problems,
            "workload_identity.max_token_lifetime",
            self.max_token_lifetime.as_deref(),
            DEFAULT_MAX_WORKLOAD_TOKEN_LIFETIME,
            (Duration::from_secs(60), Duration::from_secs(2 * 86_400)),
        );
        if enabled && self.trust_sources.is_empty() {
            problems.push("workload_identity.trust_sources: none configured; workload_identity.enabled = true needs at least one [[workload_identity.trust_sources]]".into());
        }
        let mut trust_sources: Vec<WorkloadTrustSource> = Vec::new();
        for (i, raw) in self.trust_sources.into_iter().enumerate() {
            let key = format!("workload_identity.trust_sources[{i}]");
            if let Some(source) = raw.validate(&key, policy, fetch, problems) {
                if let Some(first) = trust_sources
                    .iter()
                    .position(|t| t.kind == source.kind && t.trust == source.trust)
                {
                    problems.push(format!(
                        "{key}: {} is already configured as workload_identity.trust_sources[{first}]; trust it once",
                        source.describe()
                    ));
                }
                trust_sources.push(source);
            }
        }
        // A profile whose clients must present workload tokens while none is
        // accepted would lock every one of them out.
        if let Some(policy) = policy {
            if !enabled {
                for (name, profile) in &policy.profiles {
                    if profile.require_workload_assertion {
                        problems.push(format!(
                            "policy.profiles.{name}.require_workload_assertion: true, but workload_identity.enabled is false; no client of the profile could register or authenticate"
                        ));
                    }
                }
            }
        }
        WorkloadIdentityConfig {
            enabled,
            max_token_lifetime,
            trust_sources,
        }
    }
}

impl RawTrustSource {
    fn validate(
        self,
        key: &str,
        policy: Option<&Policy>,
        fetch: &FetchConfig,
        problems: &mut Vec<String>,
    ) -> Option<WorkloadTrustSource> {
        let before = problems.len();
        let issuer_given = self.issuer.is_some();
        let mut text = |field: &str, value: Option<String>, required: bool, what: &str| match value
        {
            Some(v) if !v.trim().is_empty() && !v.chars().any(char::is_control) => Some(v),
            Some(v) => {
                problems.push(format!(
                    "{key}.{field}: {v:?} must be non-empty printable text; {what}"
                ));
                None
            }
            None if required => {
                problems.push(format!("{key}.{field}: missing; {what}"));
                None
            }
            None => None,
        };
        let organization = text(
            "organization",
            self.organization,
            true,
            "the name of the organization its clients belong to",
        );
        let profile = text(
            "profile",
            self.profile,
            true,
            "the [policy] profile its clients are decided under",
        );
        let audience = text(
            "audience",
            self.audience,
            false,
            "the aud its tokens must carry (default: the server's issuer)",
        );
        let issuer = text(
            "issuer",
            self.issuer,
            false,
            "the cluster's service-account issuer, compared exactly",
        );
        if let (Some(policy), Some(profile)) = (policy, &profile) {
            if policy.profile(profile).is_none() {
                problems.push(format!(
                    "{key}.profile: {profile:?} is not a defined policy profile; define [policy.profiles.{profile}] or name another"
                ));
            }
        }
        let kind = match self.kind.as_deref() {
            Some("spiffe") => Some(WorkloadKind::Spiffe),
            Some("kubernetes") => Some(WorkloadKind::Kubernetes),
            Some(other) => {
                problems.push(format!(
                    "{key}.kind: {other:?} is not a workload trust source; use \"spiffe\" (JWT-SVIDs of a trust domain) or \"kubernetes\" (service-account tokens of a cluster)"
                ));
                None
            }
            None => {
                problems.push(format!(
                    "{key}.kind: missing; \"spiffe\" (JWT-SVIDs of a trust domain) or \"kubernetes\" (service-account tokens of a cluster)"
                ));
                None
            }
        };
        let trust = match (kind, self.trust_domain, issuer) {
            (Some(WorkloadKind::Spiffe), Some(domain), None) => {
                if !valid_trust_domain(&domain) {
                    problems.push(format!(
                        "{key}.trust_domain: {domain:?} is not a SPIFFE trust domain; write lowercase letters, digits, '.', '-' and '_' only, without scheme or port (SPIFFE-ID section 2.1)"
                    ));
                }
                Some(domain)
            }
            (Some(WorkloadKind::Spiffe), None, _) => {
                problems.push(format!(
                    "{key}.trust_domain: missing; the SPIFFE trust domain whose JWT-SVIDs are accepted, e.g. \"prod.example\""
                ));
                None
            }
            (Some(WorkloadKind::Spiffe), Some(_), Some(_)) => {
                problems.push(format!(
                    "{key}.issuer: not used with kind = \"spiffe\"; JWT-SVIDs are matched by the trust domain of their sub, never by iss"
                ));
                None
            }
            (Some(WorkloadKind::Kubernetes), None, Some(issuer)) => Some(issuer),
            (Some(WorkloadKind::Kubernetes), Some(_), _) => {
                problems.push(format!(
                    "{key}.trust_domain: not used with kind = \"kubernetes\"; name the cluster by its issuer"
                ));
                None
            }
            (Some(WorkloadKind::Kubernetes), None, None) => {
                if !issuer_given {
                    problems.push(format!(
                        "{key}.issuer: missing; the cluster's service-account issuer (its tokens' iss), e.g. \"https://kubernetes.default.svc\""
                    ));
                }
                None
            }
            (None, _, _) => None,
        };
        let keys = match (self.jwks, self.jwks_uri) {
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "{key}.jwks_uri: give the keys inline ({key}.jwks) or at a jwks_uri, not both"
                ));
                None
            }
            (None, None) => {
                problems.push(format!(
                    "{key}.jwks: missing; the trust source's public keys as a JWK Set (a SPIFFE bundle for kind = \"spiffe\"), or {key}.jwks_uri where they are published"
                ));
                None
            }
            (None, Some(url)) => match fetch.check_url(&url) {
                Ok(()) => Some(WorkloadKeys::JwksUri(url)),
                Err(e) => {
                    problems.push(format!(
                        "{key}.jwks_uri: {url:?} cannot be fetched: {e}; it must be https, and an internal host must be allowed in [fetch]"
                    ));
                    None
                }
            },
            (Some(jwks), None) => kind.map(|kind| {
                WorkloadKeys::Inline(public_keys(&format!("{key}.jwks"), kind, jwks, problems))
            }),
        };
        if problems.len() != before {
            return None;
        }
        Some(WorkloadTrustSource {
            kind: kind?,
            trust: trust?,
            keys: keys?,
            organization: organization?,
            profile: profile?,
            audience,
        })
    }
}

/// Reads the inline keys of a trust source: a SPIFFE bundle's JWT-SVID
/// keys, or a cluster's JWK Set checked like a client's `jwks`.
fn public_keys(
    key: &str,
    kind: WorkloadKind,
    jwks: Value,
    problems: &mut Vec<String>,
) -> Vec<PublicKey> {
    match kind {
        WorkloadKind::Spiffe => {
            let Some(jwks) = crate::statements::jwk_set(key, jwks, problems) else {
                return Vec::new();
            };
            let (keys, bundle_problems) = spiffe_bundle_keys(&jwks);
            problems.extend(bundle_problems.into_iter().map(|p| format!("{key}: {p}")));
            keys
        }
        WorkloadKind::Kubernetes => crate::statements::public_keys(key, jwks, problems),
    }
}

#[cfg(test)]
mod tests;
