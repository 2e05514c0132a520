//! What this server implements. Validation accepts exactly these values and
//! discovery advertises exactly these values, so the two can never drift.

use crate::metadata::{AuthMethod, GrantType, ResponseType};

pub const GRANT_TYPES: [GrantType; 3] = [
    GrantType::AuthorizationCode,
    GrantType::ClientCredentials,
    GrantType::RefreshToken,
];

/// Grant types the token endpoint serves now (registration accepts the
/// browser grants ahead of the authorization endpoint).
pub const TOKEN_GRANT_TYPES: [GrantType; 1] = [GrantType::ClientCredentials];

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
