//! One case per rule kind and per outcome.

use super::*;
use crate::{Policy, RawPolicy};
use serde_json::json;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

fn profile(toml_text: &str) -> Profile {
    let text = format!("version = \"v1\"\ndefault_profile = \"p\"\n[profiles.p]\n{toml_text}");
    let raw: RawPolicy = toml::from_str(&text).unwrap();
    let policy: Policy = raw
        .validate("", (90 * DAY, 30 * DAY))
        .map_err(|p| p.join("\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    policy.profiles["p"].clone()
}

fn request(body: serde_json::Value) -> ClientMetadata {
    charter_protocol::validate_registration(body.as_object().unwrap()).unwrap()
}

fn decide(toml_text: &str, body: serde_json::Value) -> Decision {
    evaluate(request(body), &profile(toml_text), PolicyState::default())
}

fn refused(decision: Decision, code: ErrorCode, fragment: &str) {
    match decision {
        Decision::Refuse(e) => {
            assert_eq!(e.code, code, "{}", e.description);
            assert!(
                e.description.contains(fragment),
                "«{}» lacks «{fragment}»",
                e.description
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn admitted(decision: Decision) -> (ClientMetadata, Vec<String>) {
    match decision {
        Decision::Admit {
            metadata,
            substitutions,
        } => (metadata, substitutions),
        other => panic!("expected admission, got {other:?}"),
    }
}

const CC: &str = "client_credentials";

#[test]
fn empty_profile_admits_what_the_protocol_admits() {
    let (_, subs) = admitted(decide("", json!({"grant_types": [CC]})));
    assert!(subs.is_empty());
}

#[test]
fn grant_types_and_auth_methods() {
    refused(
        decide(
            "grant_types = [\"authorization_code\"]",
            json!({"grant_types": [CC]}),
        ),
        ErrorCode::InvalidClientMetadata,
        "\"client_credentials\" is not allowed",
    );
    let pkjwt_only = "token_endpoint_auth_methods = [\"private_key_jwt\"]";
    refused(
        decide(pkjwt_only, json!({"grant_types": [CC]})),
        ErrorCode::InvalidClientMetadata,
        "use one of private_key_jwt",
    );
    admitted(decide(
        pkjwt_only,
        json!({"grant_types": [CC], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://c.example/jwks"}),
    ));
}

#[test]
fn scopes_allowed_and_default_substituted() {
    let rules = "scopes = [\"read\", \"write\"]\ndefault_scope = \"read\"";
    refused(
        decide(rules, json!({"grant_types": [CC], "scope": "read admin"})),
        ErrorCode::InvalidClientMetadata,
        "\"admin\" is not allowed",
    );
    let (m, subs) = admitted(decide(rules, json!({"grant_types": [CC]})));
    assert_eq!(m.scope.as_deref(), Some("read"));
    assert!(subs[0].contains("default"), "{subs:?}");
    let (m, subs) = admitted(decide(
        rules,
        json!({"grant_types": [CC], "scope": "write"}),
    ));
    assert_eq!(m.scope.as_deref(), Some("write"));
    assert!(subs.is_empty());
}

#[test]
fn redirect_uri_forms() {
    let rules = "redirect_uris = [\"https://app.example.com/cb\", \"https://*.example.net/oauth/\"]\nloopback_redirect_uris = false";
    let code = |uris: serde_json::Value| json!({"redirect_uris": uris});
    admitted(decide(
        rules,
        code(json!([
            "https://app.example.com/cb",
            "https://t1.example.net/oauth/cb"
        ])),
    ));
    refused(
        decide(rules, code(json!(["https://evil.example/cb"]))),
        ErrorCode::InvalidRedirectUri,
        "evil.example",
    );
    refused(
        decide(rules, code(json!(["http://127.0.0.1/cb"]))),
        ErrorCode::InvalidRedirectUri,
        "127.0.0.1",
    );
    admitted(decide(
        "loopback_redirect_uris = true\nredirect_uris = []",
        code(json!(["http://127.0.0.1:5000/cb"])),
    ));
    refused(
        decide(
            "redirect_uris = []",
            json!({"redirect_uris": ["com.example.app:/cb"], "application_type": "native"}),
        ),
        ErrorCode::InvalidRedirectUri,
        "com.example.app",
    );
}

#[test]
fn required_fields() {
    let rules = "required_fields = [\"contacts\", \"software_id\"]";
    let decision = decide(rules, json!({"grant_types": [CC]}));
    refused(
        decision.clone(),
        ErrorCode::InvalidClientMetadata,
        "contacts: required",
    );
    refused(
        decision,
        ErrorCode::InvalidClientMetadata,
        "software_id: required",
    );
    admitted(decide(
        rules,
        json!({"grant_types": [CC], "contacts": ["ops@c.example"], "software_id": "agent"}),
    ));
}

// DCR-46: a profile that requires a software statement refuses a request
// without one as invalid metadata; the verified statement is recorded in
// the metadata by the protocol layer.
#[test]
fn required_software_statement() {
    let rules = "require_software_statement = true";
    refused(
        decide(rules, json!({"grant_types": [CC]})),
        ErrorCode::InvalidClientMetadata,
        "software_statement: required by profile \"p\"",
    );
    let mut metadata = request(json!({"grant_types": [CC]}));
    metadata.software_statement = Some("header.payload.signature".into());
    admitted(evaluate(metadata, &profile(rules), PolicyState::default()));
    admitted(decide("", json!({"grant_types": [CC]})));
}

// Issue 6: a profile that requires workload assertions admits only clients
// a workload registered (the service sets the binding after verification).
#[test]
fn required_workload_identity() {
    let rules = "require_workload_assertion = true";
    refused(
        decide(rules, json!({"grant_types": [CC]})),
        ErrorCode::InvalidClientMetadata,
        "workload_identity: required by profile \"p\"",
    );
    let mut metadata = request(json!({"grant_types": [CC]}));
    let binding = json!({"kind": "spiffe", "subject": "spiffe://prod.example/api"});
    metadata.workload_identity = Some(serde_json::from_value(binding).unwrap());
    admitted(evaluate(metadata, &profile(rules), PolicyState::default()));
}

#[test]
fn every_violation_is_listed() {
    let rules = "grant_types = [\"authorization_code\"]\nrequired_fields = [\"contacts\"]\nscopes = [\"read\"]";
    let decision = decide(rules, json!({"grant_types": [CC], "scope": "write"}));
    for fragment in ["grant_types", "contacts", "scope"] {
        refused(decision.clone(), ErrorCode::InvalidClientMetadata, fragment);
    }
}

#[test]
fn quota() {
    let p = profile("max_clients_per_organization = 2");
    let m = request(json!({"grant_types": [CC]}));
    let full = PolicyState {
        organization_client_count: 2,
        is_update: false,
    };
    refused(
        evaluate(m.clone(), &p, full),
        ErrorCode::InvalidClientMetadata,
        "has 2 clients",
    );
    let room = PolicyState {
        organization_client_count: 1,
        is_update: false,
    };
    assert!(matches!(
        evaluate(m.clone(), &p, room),
        Decision::Admit { .. }
    ));
    // An update does not add a client.
    assert!(matches!(
        evaluate(
            m,
            &p,
            PolicyState {
                is_update: true,
                ..full
            }
        ),
        Decision::Admit { .. }
    ));
}

#[test]
fn approval() {
    match decide("approval = \"always\"", json!({"grant_types": [CC]})) {
        Decision::Pending { reasons, .. } => assert!(reasons[0].contains("every client")),
        other => panic!("{other:?}"),
    }
    let rules = "approval = \"when_scopes_outside\"\napproval_scopes = [\"read\"]";
    assert!(matches!(
        decide(rules, json!({"grant_types": [CC], "scope": "read"})),
        Decision::Admit { .. }
    ));
    match decide(rules, json!({"grant_types": [CC], "scope": "read deploy"})) {
        Decision::Pending { reasons, .. } => assert!(reasons[0].contains("\"deploy\"")),
        other => panic!("{other:?}"),
    }
}

// An RFC 7592 update cannot leave the profile, nor wait for approval.
#[test]
fn updates_stay_inside_the_profile() {
    let p =
        profile("scopes = [\"read\"]\napproval = \"when_scopes_outside\"\napproval_scopes = []");
    let update = PolicyState {
        is_update: true,
        ..Default::default()
    };
    refused(
        evaluate(
            request(json!({"grant_types": [CC], "scope": "admin"})),
            &p,
            update,
        ),
        ErrorCode::InvalidClientMetadata,
        "not allowed",
    );
    refused(
        evaluate(
            request(json!({"grant_types": [CC], "scope": "read"})),
            &p,
            update,
        ),
        ErrorCode::InvalidClientMetadata,
        "needs an administrator's approval",
    );
}

#[test]
fn policy_file_problems_name_their_keys() {
    let text = r#"
        default_profile = "missing"
        [profiles.a]
        grant_types = ["password"]
        token_endpoint_auth_methods = []
        redirect_uris = ["http://x.example/cb"]
        client_lifetime = "10d"
        secret_lifetime = "20d"
        approval = "sometimes"
        required_fields = ["jwks"]
        max_clients_per_organization = 0
        scopes = ["read"]
        default_scope = "write"
    "#;
    let raw: RawPolicy = toml::from_str(text).unwrap();
    let problems = raw
        .validate("policy.", (90 * DAY, 30 * DAY))
        .unwrap_err()
        .join("\n");
    for key in [
        "policy.version",
        "policy.profiles.a.grant_types",
        "policy.profiles.a.redirect_uris",
        "policy.profiles.a.secret_lifetime",
        "policy.profiles.a.approval",
        "policy.profiles.a.required_fields",
        "policy.profiles.a.max_clients_per_organization",
        "policy.profiles.a.default_scope",
    ] {
        assert!(problems.contains(key), "{key} missing from:\n{problems}");
    }
    assert!(
        toml::from_str::<RawPolicy>("[profiles.a]\ngrant_type = []").is_err(),
        "unknown keys are refused"
    );
}
