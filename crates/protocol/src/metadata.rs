//! The registered client metadata (RFC 7591 §2, OIDC DCR §2) after
//! validation and defaulting: what is stored and what is echoed.
//!
//! Serializing a [`ClientMetadata`] gives exactly the metadata members of a
//! client information response (RFC 7591 §3.2.1); the server adds
//! `client_id`, credentials and management members around it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(value: &str) -> Option<Self> {
                match value { $($wire => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_enum!(
    /// `grant_types` values this server can register (RFC 7591 §2).
    GrantType {
        AuthorizationCode => "authorization_code",
        ClientCredentials => "client_credentials",
        RefreshToken => "refresh_token",
    }
);

wire_enum!(
    /// `response_types` values this server can register (RFC 7591 §2).
    ResponseType { Code => "code" }
);

wire_enum!(
    /// `token_endpoint_auth_method` values (RFC 7591 §2, OIDC Core §9).
    AuthMethod {
        ClientSecretBasic => "client_secret_basic",
        ClientSecretPost => "client_secret_post",
        PrivateKeyJwt => "private_key_jwt",
        None => "none",
    }
);

wire_enum!(
    /// `application_type` (OIDC DCR §2); `web` when omitted.
    ApplicationType { Web => "web", Native => "native" }
);

impl AuthMethod {
    /// Whether the server issues a `client_secret` for this method.
    pub fn uses_shared_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

/// Validated client metadata, with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<ResponseType>,
    pub application_type: ApplicationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// RFC 7591 §2.3, §3.2.1: the verified software statement exactly as
    /// presented, echoed unmodified; its claims are already merged into the
    /// other members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_statement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// OpenID Connect members, present for clients that use the
    /// authorization endpoint (OIDC DCR §2 defaults applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_auth_time: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiate_login_uri: Option<String>,
    /// OIDC DCR §5: a JSON array of URIs that must hold every redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// RFC 9449 §5.2: every access token of this client is DPoP-bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens: Option<bool>,
    /// The workload the client is bound to (a Charter extension): set by
    /// the server from a verified workload identity token, echoed
    /// read-only, never read from a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<crate::WorkloadBinding>,
    /// Language-tagged human-readable members, keyed as sent
    /// (`client_name#ja-Jpan-JP`; RFC 7591 §2.2), kept verbatim.
    #[serde(flatten)]
    pub localized: BTreeMap<String, String>,
}

impl ClientMetadata {
    pub fn has_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Confidential clients get a shared secret from the server.
    pub fn needs_secret(&self) -> bool {
        self.token_endpoint_auth_method.uses_shared_secret()
    }
}
