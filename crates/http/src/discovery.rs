//! Authorization server metadata (RFC 8414) and OpenID Provider metadata
//! (OIDC Discovery 1.0 §3), built from `protocol::capabilities` so that what
//! is advertised is exactly what registration accepts.
//!
//! Only what exists is listed: every endpoint here is served, every grant
//! type is one the token endpoint serves, and every algorithm one the
//! server verifies or signs with (checklist DISC-17).

use charter_config::Issuer;
use charter_protocol::capabilities as caps;
use serde_json::{json, Value};

/// `metadata_documents`: whether `client_id`s that are metadata document
/// URLs are accepted (CIMD §5 asks for the member then; it is left out
/// otherwise, so MCP clients register instead of trying a document).
pub fn oauth_metadata(issuer: &Issuer, metadata_documents: bool) -> Value {
    let mut doc = json!({
        "issuer": issuer.as_str(),
        "authorization_endpoint": issuer.endpoint("/authorize"),
        "jwks_uri": issuer.endpoint("/jwks"),
        "registration_endpoint": issuer.endpoint("/register"),
        "token_endpoint": issuer.endpoint("/token"),
        "introspection_endpoint": issuer.endpoint("/introspect"),
        "revocation_endpoint": issuer.endpoint("/revoke"),
        "response_types_supported": caps::RESPONSE_TYPES.map(|r| r.as_str()),
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": caps::CODE_CHALLENGE_METHODS,
        // RFC 9207: every authorization response carries iss.
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": charter_service::DPOP_SIGNING_ALGS,
        // RFC 8414 §2 defaults grant_types_supported to authorization_code
        // and implicit; list what the token endpoint serves.
        "grant_types_supported": caps::TOKEN_GRANT_TYPES.map(|g| g.as_str()),
        "token_endpoint_auth_methods_supported": caps::TOKEN_ENDPOINT_AUTH_METHODS.map(|m| m.as_str()),
        "token_endpoint_auth_signing_alg_values_supported": caps::CLIENT_ASSERTION_ALGS,
        // Introspection is for confidential clients (resource servers).
        "introspection_endpoint_auth_methods_supported": caps::CONFIDENTIAL_AUTH_METHODS.map(|m| m.as_str()),
        "introspection_endpoint_auth_signing_alg_values_supported": caps::CLIENT_ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": caps::TOKEN_ENDPOINT_AUTH_METHODS.map(|m| m.as_str()),
        "revocation_endpoint_auth_signing_alg_values_supported": caps::CLIENT_ASSERTION_ALGS,
    });
    if let (true, Some(map)) = (metadata_documents, doc.as_object_mut()) {
        map.insert("client_id_metadata_document_supported".into(), json!(true));
    }
    doc
}

pub fn openid_metadata(issuer: &Issuer, metadata_documents: bool) -> Value {
    let mut doc = oauth_metadata(issuer, metadata_documents);
    if let Some(map) = doc.as_object_mut() {
        map.insert("subject_types_supported".into(), json!(caps::SUBJECT_TYPES));
        map.insert(
            "id_token_signing_alg_values_supported".into(),
            json!(caps::ID_TOKEN_SIGNING_ALGS),
        );
        map.insert(
            "userinfo_endpoint".into(),
            json!(issuer.endpoint("/userinfo")),
        );
        map.insert("scopes_supported".into(), json!(caps::OIDC_SCOPES));
        map.insert("claims_supported".into(), json!(caps::CLAIMS));
        // OIDC Discovery §3 defaults this to true; no request_uri support exists.
        map.insert("request_uri_parameter_supported".into(), json!(false));
        map.insert("request_parameter_supported".into(), json!(false));
        map.insert("claims_parameter_supported".into(), json!(false));
    }
    doc
}
