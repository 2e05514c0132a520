//! Use cases of the authorization server, free of HTTP types: first-start
//! bootstrap, signing keys, and client registration and management
//! (RFC 7591, RFC 7592).
//!
//! Handlers in `charter-http` call exactly one function here and map its
//! [`Error`] to a response; this crate decides what happens, `protocol`
//! decides what a request means, and `store` keeps the result.

pub mod audit;
mod authorize;
mod bootstrap;
pub mod credentials;
mod documents;
mod error;
mod grants;
mod keys;
mod lifecycle;
mod policy_check;
mod registration;
mod remote;
pub mod reports;
mod statements;
mod token;
mod usage;
mod users;
mod verified;
mod workloads;

pub use authorize::{
    redirect_uri_matches, Answer, AuthorizationRequest, AuthorizeParams, Authorizer, Browser,
    ConsentForm, ConsentPage, LoginForm, LoginPage, Outcome, Page,
};
pub use bootstrap::{bootstrap, BootstrapOutput};
pub use charter_jose::DPOP_SIGNING_ALGS;
pub use credentials::{Credential, Hasher};
pub use documents::MetadataDocuments;
pub use error::Error;
pub use grants::ProofSite;
pub use keys::KeyRing;
pub use policy_check::policy_check;
pub use registration::{
    AdminIdentity, AdminRole, AuditFilter, AuthenticatedClient, ClientInformation, Registrar,
    RegistrationGrant, RequestContext, BAD_RAT,
};
pub use statements::{ConfiguredKeys, InlineKeys, StatementKeys};
pub use token::{ClientCredentials, TokenService, UsableClient, JWT_BEARER_ASSERTION};
pub use usage::UsageRecorder;
pub use users::{EndUser, LocalUsers, UserDirectory};
pub use workloads::JWT_SPIFFE_ASSERTION;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
