//! Dry runs of the registration policy: the decision and its reasons for a
//! request, without creating anything. Used by `charter policy check` and
//! the admin API.

use charter_policy::{evaluate, Decision, Policy, PolicyState};
use charter_protocol::validate_registration;
use serde_json::{json, Map, Value};

/// Decides `body` under `profile` of `policy` as a registration would, and
/// describes the outcome as JSON.
pub fn policy_check(
    policy: &Policy,
    profile: &str,
    body: &Map<String, Value>,
    state: PolicyState,
) -> Value {
    let Some(profile) = policy.profile(profile) else {
        return json!({
            "decision": "refuse",
            "error": "invalid_request",
            "reasons": [format!("profile {profile:?} is not defined in policy version {:?}", policy.version)],
        });
    };
    let base = |decision: &str| json!({"decision": decision, "profile": profile.name, "policy_version": policy.version});
    // A dry run verifies no signature, so it cannot say which of a
    // statement's values would win; it decides plain JSON members only.
    if body.get("software_statement").is_some_and(|v| !v.is_null()) {
        let mut out = base("refuse");
        out["error"] = json!("invalid_request");
        out["reasons"] = json!(["software_statement: the dry run does not verify statements; send the statement's claims as JSON members instead"]);
        return out;
    }
    let metadata = match validate_registration(body) {
        Ok(metadata) => metadata,
        Err(e) => return refuse(base("refuse"), &e),
    };
    match evaluate(metadata, profile, state) {
        Decision::Admit {
            metadata,
            substitutions,
        } => {
            let mut out = base("admit");
            out["substitutions"] = json!(substitutions);
            out["metadata"] = serde_json::to_value(metadata).unwrap_or(Value::Null);
            out
        }
        Decision::Pending {
            metadata,
            substitutions,
            reasons,
        } => {
            let mut out = base("pending");
            out["substitutions"] = json!(substitutions);
            out["reasons"] = json!(reasons);
            out["metadata"] = serde_json::to_value(metadata).unwrap_or(Value::Null);
            out
        }
        Decision::Refuse(e) => refuse(base("refuse"), &e),
    }
}

fn refuse(mut out: Value, e: &charter_protocol::Error) -> Value {
    out["error"] = json!(e.code.as_str());
    out["reasons"] = json!(e.description.split("; ").collect::<Vec<_>>());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn outcomes() {
        let policy = Policy::builtin(Duration::from_secs(86_400), Duration::from_secs(3600));
        let body = |v: Value| v.as_object().cloned().unwrap();
        let admit = policy_check(
            &policy,
            "default",
            &body(json!({"grant_types": ["client_credentials"]})),
            PolicyState::default(),
        );
        assert_eq!(admit["decision"], "admit");
        assert_eq!(admit["policy_version"], "builtin");
        let refuse = policy_check(
            &policy,
            "default",
            &body(json!({"grant_types": ["password"]})),
            PolicyState::default(),
        );
        assert_eq!(refuse["decision"], "refuse");
        assert_eq!(refuse["error"], "invalid_client_metadata");
        let unknown = policy_check(&policy, "nope", &body(json!({})), PolicyState::default());
        assert_eq!(unknown["decision"], "refuse");
    }
}
