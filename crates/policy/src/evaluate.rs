//! The decision: a pure function of the validated request, the profile and
//! the current state.

use charter_protocol::{is_loopback_host, ClientMetadata, Error, ErrorCode};

use crate::{Approval, Profile};

/// What the decision needs to know about the world besides the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyState {
    /// Clients the organization already has (for the quota).
    pub organization_client_count: u64,
    /// Whether this is an RFC 7592 update of an existing client.
    pub is_update: bool,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admitted, possibly with values substituted (each described, RFC 7591 §3.2.1).
    Admit {
        metadata: ClientMetadata,
        substitutions: Vec<String>,
    },
    /// Admitted but unusable until an administrator approves; `reasons` say why.
    Pending {
        metadata: ClientMetadata,
        substitutions: Vec<String>,
        reasons: Vec<String>,
    },
    /// Refused; the error lists every violated rule.
    Refuse(Error),
}

fn field_present(metadata: &ClientMetadata, field: &str) -> bool {
    match field {
        "contacts" => !metadata.contacts.is_empty(),
        "software_id" => metadata.software_id.is_some(),
        "software_version" => metadata.software_version.is_some(),
        "client_name" => metadata.client_name.is_some(),
        "client_uri" => metadata.client_uri.is_some(),
        "logo_uri" => metadata.logo_uri.is_some(),
        "policy_uri" => metadata.policy_uri.is_some(),
        "tos_uri" => metadata.tos_uri.is_some(),
        _ => false,
    }
}

fn is_http_loopback(uri: &str) -> bool {
    uri.strip_prefix("http://").is_some_and(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = if authority.starts_with('[') {
            authority.split_inclusive(']').next().unwrap_or("")
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        is_loopback_host(host)
    })
}

/// Decides a registration (or update) under `profile`.
pub fn evaluate(mut metadata: ClientMetadata, profile: &Profile, state: PolicyState) -> Decision {
    let name = &profile.name;
    let mut violations: Vec<String> = Vec::new();
    let mut redirect_violations: Vec<String> = Vec::new();
    let mut substitutions = Vec::new();

    for field in &profile.required_fields {
        if !field_present(&metadata, field) {
            violations.push(format!("{field}: required by profile {name:?}"));
        }
    }
    // RFC 7591 defines no error for a missing statement (§3.2.2 covers
    // statements presented). `software_statement` is a client metadata
    // member (§2.3), so its absence where required is an invalid metadata
    // value, reported like any other required member: `invalid_client_metadata`.
    // `unapproved_software_statement` would claim a statement was presented.
    if profile.require_software_statement && metadata.software_statement.is_none() {
        violations.push(format!(
            "software_statement: required by profile {name:?}; present a statement signed by a trusted issuer (RFC 7591 §2.3)"
        ));
    }
    // Like a missing statement: no RFC code names a missing workload, and
    // the binding is recorded as a metadata member (`workload_identity`).
    if profile.require_workload_assertion && metadata.workload_identity.is_none() {
        violations.push(format!(
            "workload_identity: required by profile {name:?}; register with a workload identity token (the Workload-Identity header) from a trusted SPIFFE trust domain or Kubernetes cluster"
        ));
    }
    if let Some(allowed) = &profile.grant_types {
        for grant in &metadata.grant_types {
            if !allowed.contains(grant) {
                violations.push(format!(
                    "grant_types: {:?} is not allowed by profile {name:?}",
                    grant.as_str()
                ));
            }
        }
    }
    if let Some(allowed) = &profile.token_endpoint_auth_methods {
        let method = metadata.token_endpoint_auth_method;
        if !allowed.contains(&method) {
            let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            violations.push(format!(
                "token_endpoint_auth_method: {:?} is not allowed by profile {name:?}; use one of {}",
                method.as_str(),
                names.join(", ")
            ));
        }
    }
    match (&metadata.scope, &profile.default_scope) {
        (None, Some(default)) => {
            substitutions.push(format!(
                "scope: none requested; profile {name:?} registered its default {default:?}"
            ));
            metadata.scope = Some(default.clone());
        }
        (Some(scope), _) => {
            if let Some(allowed) = &profile.scopes {
                for token in scope.split(' ') {
                    if !allowed.iter().any(|a| a == token) {
                        violations.push(format!(
                            "scope: {token:?} is not allowed by profile {name:?}"
                        ));
                    }
                }
            }
        }
        (None, None) => {}
    }
    for uri in &metadata.redirect_uris {
        let allowed = if is_http_loopback(uri) {
            profile.loopback_redirect_uris
        } else {
            profile
                .redirect_uris
                .as_ref()
                .is_none_or(|patterns| patterns.iter().any(|p| p.matches(uri)))
        };
        if !allowed {
            redirect_violations.push(format!(
                "redirect_uris: {uri:?} is not allowed by profile {name:?}"
            ));
        }
    }
    if let Some(max) = profile.max_clients_per_organization {
        if !state.is_update && state.organization_client_count >= max {
            violations.push(format!(
                "organization: has {} clients, the most profile {name:?} allows",
                state.organization_client_count
            ));
        }
    }

    if !violations.is_empty() || !redirect_violations.is_empty() {
        let code = if violations.is_empty() {
            ErrorCode::InvalidRedirectUri
        } else {
            ErrorCode::InvalidClientMetadata
        };
        redirect_violations.extend(violations);
        return Decision::Refuse(Error::new(code, redirect_violations.join("; ")));
    }

    let approval_reasons: Vec<String> = match &profile.approval {
        Approval::Never => Vec::new(),
        Approval::Always => vec![format!(
            "profile {name:?} requires approval for every client"
        )],
        Approval::WhenScopesOutside(set) => metadata
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|t| !t.is_empty() && !set.iter().any(|s| s == t))
            .map(|t| {
                format!("scope {t:?} is outside the set profile {name:?} admits without approval")
            })
            .collect(),
    };
    if approval_reasons.is_empty() {
        Decision::Admit {
            metadata,
            substitutions,
        }
    } else if state.is_update {
        // An update cannot wait for approval: the client keeps its approved
        // registration, and a change that needs approval is refused.
        Decision::Refuse(Error::invalid_metadata(format!(
            "this change needs an administrator's approval under profile {name:?} ({}); register a new client for it",
            approval_reasons.join("; ")
        )))
    } else {
        Decision::Pending {
            metadata,
            substitutions,
            reasons: approval_reasons,
        }
    }
}

#[cfg(test)]
mod tests;
