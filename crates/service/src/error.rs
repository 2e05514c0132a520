//! The service layer's one error type. `charter-http` maps each variant to a
//! status, an RFC error code and headers in one function.

use charter_protocol::Error as ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or violates a rule; the description names it.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// No bearer credential was presented (RFC 6750 §3.1: no error code).
    #[error("no bearer token presented")]
    MissingToken,
    /// The bearer credential is unknown, expired, revoked or not valid for
    /// the resource (RFC 6750 §3.1 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// Client authentication at the token, introspection or revocation
    /// endpoint failed, or the client may not be used now (RFC 6749 §5.2
    /// `invalid_client`). `via_header`: the client authenticated with the
    /// `Authorization` header, so the answer carries a challenge.
    #[error("invalid client: {description}")]
    InvalidClient {
        description: String,
        via_header: bool,
    },
    /// Authenticated, but not allowed to do this (RFC 6750 §3.1 `insufficient_scope`).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The token endpoint wants a DPoP proof carrying this server nonce
    /// (RFC 9449 §8: `use_dpop_nonce` with a `DPoP-Nonce` header).
    #[error("DPoP nonce required: {description}")]
    DpopNonce { description: String, nonce: String },
    /// At a protected resource (userinfo), a DPoP-bound token came without a
    /// valid proof, or a proof lacks the current nonce (RFC 9449 §7.1, §9):
    /// 401 with a `DPoP` challenge.
    #[error("DPoP at resource: {description}")]
    ResourceDpop {
        code: charter_protocol::ErrorCode,
        description: String,
        nonce: Option<String>,
    },
    /// The thing addressed does not exist (an admin API path naming an
    /// unknown user or consent); the description names it.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request clashes with what exists (a username that is taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A failure the caller cannot fix; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<charter_store::Error> for Error {
    fn from(e: charter_store::Error) -> Self {
        Error::Internal(e.to_string())
    }
}
