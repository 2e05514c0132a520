//! Request extraction: bearer tokens (RFC 6750 §2.1) and size-limited JSON
//! object bodies.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use charter_protocol::{check_json_shape, Error as ProtocolError, UniqueObject};
use charter_service::{
    AdminIdentity, AuthenticatedClient, Error, RegistrationGrant, RequestContext, BAD_RAT,
};
use std::sync::Arc;

use crate::AppState;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use crate::error::{ApiError, Rejection};
use crate::MAX_BODY_BYTES;

/// The bearer token of the `Authorization` header, if the request used the
/// Bearer scheme (RFC 6750 §2.1). A malformed Bearer value, or several
/// `Authorization` headers, yield an empty token, so that it fails as
/// `invalid_token` rather than passing as a missing one.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(String::new());
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // RFC 6750 §2.1 b64token syntax.
    let valid = !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    Some(if valid {
        token.to_owned()
    } else {
        String::new()
    })
}

/// The header in which a workload presents its SPIFFE JWT-SVID or
/// Kubernetes service-account token at registration, in place of an initial
/// access token (a Charter extension: RFC 7591 has no slot for it, and
/// `Authorization: Bearer` carries initial access tokens). A header rather
/// than a body member, so that the credential is checked before the body
/// is read, like every other registration credential.
pub const WORKLOAD_IDENTITY_HEADER: &str = "workload-identity";

/// The `Workload-Identity` token, if the header is present. Several such
/// headers, or a value that is not visible ASCII, yield an empty token, so
/// that it fails as `invalid_token` rather than passing as a missing one.
fn workload_token(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(WORKLOAD_IDENTITY_HEADER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(String::new());
    }
    Some(value.to_str().map(str::trim).unwrap_or_default().to_owned())
}

/// A JSON object body: `Content-Type: application/json`, at most
/// [`MAX_BODY_BYTES`], of a shape that cannot make parsing expensive, with no
/// member name repeated. Axum runs the credential extractors (request parts)
/// before this body extractor, so an anonymous request never costs a parse.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        json_object(&parts.headers, body).await.map(JsonObject)
    }
}

async fn json_object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, Response> {
    let invalid = |e: ProtocolError| ApiError(Error::Protocol(e)).into_response();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(invalid(ProtocolError::invalid_request(
            "Content-Type must be application/json (RFC 7591 section 3)",
        )));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(Rejection::PayloadTooLarge.into_response());
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Rejection::PayloadTooLarge.into_response())
        }
        Err(_) => {
            return Err(invalid(ProtocolError::invalid_request(
                "the request body could not be read",
            )))
        }
    };
    check_json_shape(&bytes).map_err(invalid)?;
    match serde_json::from_slice::<UniqueObject>(&bytes) {
        Ok(UniqueObject(map)) => Ok(map),
        Err(e) if e.is_data() => Err(invalid(ProtocolError::invalid_metadata(format!(
            "the request body must be a JSON object without repeated member names: {e}"
        )))),
        Err(_) => Err(invalid(ProtocolError::invalid_metadata(
            "the request body is not valid JSON",
        ))),
    }
}

fn source(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Runs an authentication, refusing blocked sources first and counting a
/// failure against the source.
async fn guarded<T>(
    state: &AppState,
    source: Option<std::net::IpAddr>,
    authenticate: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Response> {
    state
        .limits
        .check_blocked(source)
        .map_err(|wait| Rejection::TooManyRequests(wait).into_response())?;
    match authenticate.await {
        Ok(value) => Ok(value),
        Err(e) => {
            if matches!(e, Error::InvalidToken(_)) {
                state.limits.record_failure(source);
            }
            Err(ApiError(e).into_response())
        }
    }
}

/// A request to the client configuration endpoint whose registration access
/// token matches the client its path names (RFC 7592 §2). An undecodable
/// `client_id` names no client and gets the same 401 as a wrong token.
pub struct ConfiguredClient(pub AuthenticatedClient);

impl FromRequestParts<Arc<AppState>> for ConfiguredClient {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers);
        let client_id = Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| id);
        let check = async {
            match client_id {
                Ok(id) => {
                    state
                        .registrar
                        .authenticate_rat(&id, token.as_deref())
                        .await
                }
                Err(_) if token.is_none() => Err(Error::MissingToken),
                Err(_) => Err(Error::InvalidToken(BAD_RAT)),
            }
        };
        guarded(state, source(parts), check)
            .await
            .map(ConfiguredClient)
    }
}

/// A registration request that carried a valid initial access token
/// (RFC 7591 §3), or a valid workload identity token in its place (the
/// `Workload-Identity` header, where workload identity is enabled), or
/// neither where anonymous registration or software statements are enabled.
/// A bad workload token is answered and counted like a bad initial access
/// token.
///
/// Credentials are checked from the request parts, before the body is
/// read. Only without a token, when a trusted software statement in the
/// body may stand in for one, does the handler go on to read the body; such
/// requests are rate limited per source first, like anonymous ones, so an
/// unauthenticated caller's parse and signature check stay bounded.
pub struct Registration(pub RegistrationGrant);

impl FromRequestParts<Arc<AppState>> for Registration {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers);
        let workload = workload_token(&parts.headers);
        let source = source(parts);
        let too_many = |wait| Rejection::TooManyRequests(wait).into_response();
        state
            .limits
            .check_registration_source(source)
            .map_err(too_many)?;
        let authenticate = async {
            match &workload {
                Some(workload) => {
                    state
                        .registrar
                        .authenticate_workload(token.as_deref(), workload)
                        .await
                }
                None => {
                    state
                        .registrar
                        .authenticate_iat(token.as_deref(), source)
                        .await
                }
            }
        };
        let grant = guarded(state, source, authenticate).await?;
        match grant.token_id() {
            Some(id) => state
                .limits
                .check_registration_token(id)
                .map_err(too_many)?,
            // Which tokenless path the request takes is known only once the
            // body is read, so it counts against each enabled path's limit.
            None => {
                if grant.is_anonymous() {
                    state.limits.check_anonymous(source).map_err(too_many)?;
                }
                if grant.may_present_statement() {
                    state.limits.check_statement(source).map_err(too_many)?;
                }
            }
        }
        Ok(Registration(grant))
    }
}

/// A request that carried an admin token; handlers check its role.
pub struct Admin(pub AdminIdentity);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers);
        let check = async {
            let token = token.ok_or(Error::MissingToken)?;
            match state.registrar.admin(&token).await? {
                Some(identity) => Ok(Admin(identity)),
                None => Err(Error::InvalidToken("the admin token is not valid")),
            }
        };
        match guarded(state, source(parts), check).await {
            Ok(admin) => Ok(admin),
            Err(response) => Err(response),
        }
    }
}

/// Where the request came from, for the audit log: the peer address and the
/// request id set by the request-id layer.
pub struct Context(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let source = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Context(RequestContext {
            source,
            request_id,
            admin: None,
        }))
    }
}
