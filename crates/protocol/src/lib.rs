//! Wire types and validation for client registration: RFC 7591 (dynamic
//! registration), RFC 7592 (management), OpenID Connect Dynamic Client
//! Registration 1.0, plus the error codes those specs define.
//!
//! Everything here is a pure function of its input: no I/O, no clock, no
//! storage. The service layer decides what to do with a validated
//! [`ClientMetadata`]; this crate only says whether a request is well-formed
//! and what it means.

mod body;
pub mod capabilities;
mod document;
mod error;
mod metadata;
mod redirect;
mod statement;
mod validate;
mod workload;

pub use body::check_json_shape;
pub use charter_jose::UniqueObject;
pub use document::{
    check_client_id_url, is_document_client_id, validate_document, MAX_CLIENT_ID_URL_LENGTH,
};
pub use error::{Error, ErrorCode};
pub use metadata::{ApplicationType, AuthMethod, ClientMetadata, GrantType, ResponseType};
pub use redirect::is_loopback_host;
pub use statement::{
    parse_software_statement, SoftwareStatement, StatementCheck, UnverifiedStatement, CLOCK_SKEW,
};
pub use validate::{validate_registration, validate_update, UpdateRequest};
pub use workload::WorkloadBinding;
