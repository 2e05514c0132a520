//! Records of the user-facing flows: end users, their browser sessions,
//! pending authorization requests (interactions), remembered consent,
//! authorization codes, grants and refresh tokens.
//!
//! As everywhere in the store, bearer values (session cookies, codes,
//! refresh tokens) arrive only as keyed hashes; passwords only as argon2id
//! PHC strings.

use crate::{TokenHash, UnixTime};

/// An end user of the built-in local user store.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The stable subject identifier (`sub`); never reused.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// The argon2id PHC string of the password.
    pub password_hash: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub disabled: bool,
    pub created_at: UnixTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser: the cookie value is known only by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: TokenHash,
    pub user_id: String,
    /// When the user last entered a password (OIDC `auth_time`).
    pub auth_time: UnixTime,
    pub expires_at: UnixTime,
}

/// An authorization request that passed validation and waits for the user
/// to sign in and consent. It is bound to the browser that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// Unguessable; carried in the login and consent forms.
    pub id: String,
    /// Hash of the browser-binding cookie the request was started with.
    pub browser_hash: TokenHash,
    pub client_id: String,
    /// The validated authorization request (service-defined JSON).
    pub request: serde_json::Value,
    /// Set once the user signed in for this request.
    pub user_id: Option<String>,
    pub auth_time: Option<UnixTime>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A user's remembered consent for a client: the scopes and resources
/// granted so far (a later request within them needs no new consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    /// Space-separated scope tokens.
    pub scope: String,
    pub resources: Vec<String>,
    pub granted_at: UnixTime,
}

impl Consent {
    /// This consent added to `earlier`: the union of scopes and of
    /// resources, the earlier ones first; `granted_at` is this one's.
    pub fn merged_into(&self, earlier: &Consent) -> Consent {
        let mut scopes: Vec<&str> = earlier.scope.split(' ').filter(|s| !s.is_empty()).collect();
        for s in self.scope.split(' ').filter(|s| !s.is_empty()) {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let mut resources = earlier.resources.clone();
        for r in &self.resources {
            if !resources.contains(r) {
                resources.push(r.clone());
            }
        }
        Consent {
            scope: scopes.join(" "),
            resources,
            ..self.clone()
        }
    }
}

/// An issued authorization code (RFC 6749 §4.1.2), single-use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: TokenHash,
    /// The grant the code's tokens will belong to, fixed when the code is
    /// issued so a replayed code can revoke what the first use issued.
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    /// The `redirect_uri` the authorization request carried (None if it
    /// had none and the client's only registered URI was used).
    pub redirect_uri: Option<String>,
    pub scope: String,
    pub resources: Vec<String>,
    /// The S256 `code_challenge` (RFC 7636 §4.2).
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub auth_time: UnixTime,
    /// `dpop_jkt` of the authorization request (RFC 9449 §10).
    pub dpop_jkt: Option<String>,
    pub expires_at: UnixTime,
    /// Whether the code was redeemed (or a redemption attempted) before.
    pub used: bool,
}

/// What one authorization (a code's redemption) granted; refresh tokens
/// and the access tokens issued from it belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub resources: Vec<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    /// The absolute end of the grant: no refresh token outlives it.
    pub expires_at: UnixTime,
    pub revoked: bool,
    /// The DPoP key public-client refresh tokens are bound to (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
}

/// A refresh token, rotated on every use (RFC 9700 §4.14.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: TokenHash,
    pub grant_id: String,
    pub client_id: String,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
    /// Whether it was already exchanged; presenting it again is a replay.
    pub used: bool,
}

/// An access token issued from a grant, remembered so that revoking the
/// grant revokes it too (until it would expire anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantAccessToken {
    pub jti: String,
    pub expires_at: UnixTime,
}

/// Tokens issued in one transaction: a code's redemption creates `grant`;
/// a refresh marks `rotated_from` used. Either way the new refresh token
/// and the access token are recorded under `grant_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub grant_id: String,
    /// The new grant (code redemption); `None` when refreshing an existing one.
    pub grant: Option<Grant>,
    /// The refresh token exchanged for these tokens; it must still be unused.
    pub rotated_from: Option<TokenHash>,
    pub refresh_token: Option<RefreshToken>,
    pub access_token: GrantAccessToken,
    /// Binds an existing grant that has no DPoP key yet to this one (a
    /// public client that starts using DPoP at a refresh, RFC 9449 §5).
    pub bind_dpop_jkt: Option<String>,
}
