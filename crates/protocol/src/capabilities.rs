//! What this server implements. Validation accepts exactly these values and
//! discovery advertises exactly these values, so the two can never drift.

use crate::metadata::{AuthMethod, GrantType, ResponseType};

pub const GRANT_TYPES: [GrantType; 3] = [
    GrantType::AuthorizationCode,
    GrantType::ClientCredentials,
    GrantType::RefreshToken,
];

/// Grant types the token endpoint serves.
pub const TOKEN_GRANT_TYPES: [GrantType; 3] = GRANT_TYPES;

/// RFC 7636: the only PKCE method accepted (RFC 9700 §2.1.1).
pub const CODE_CHALLENGE_METHODS: [&str; 1] = ["S256"];

/// Scopes with a meaning to this server (OIDC Core §5.4); clients may
/// register others for their resource servers.
pub const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// Claims the userinfo endpoint and ID tokens can return.
pub const CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "preferred_username",
    "name",
    "email",
];

/// Methods of clients that hold credentials.
pub const CONFIDENTIAL_AUTH_METHODS: [AuthMethod; 3] = [
    AuthMethod::ClientSecretBasic,
    AuthMethod::ClientSecretPost,
    AuthMethod::PrivateKeyJwt,
];

pub const RESPONSE_TYPES: [ResponseType; 1] = [ResponseType::Code];

pub const TOKEN_ENDPOINT_AUTH_METHODS: [AuthMethod; 4] = [
    AuthMethod::ClientSecretBasic,
    AuthMethod::ClientSecretPost,
    AuthMethod::PrivateKeyJwt,
    AuthMethod::None,
];

/// Algorithms a `private_key_jwt` client may sign its assertions with
/// (`token_endpoint_auth_signing_alg`). `none` and HMAC are never accepted.
pub const CLIENT_ASSERTION_ALGS: [&str; 3] = ["ES256", "PS256", "RS256"];

/// Algorithms the server signs ID tokens with; RS256 is mandatory (OIDC Core §15.1).
pub const ID_TOKEN_SIGNING_ALGS: [&str; 2] = ["RS256", "ES256"];

pub const SUBJECT_TYPES: [&str; 1] = ["public"];
