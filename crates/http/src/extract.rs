//! Request extraction: bearer tokens (RFC 6750 §2.1) and size-limited JSON
//! object bodies.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use charter_protocol::{check_json_shape, Error as ProtocolError};
use charter_service::Error;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};

use crate::error::{ApiError, Rejection};
use crate::MAX_BODY_BYTES;

/// The bearer token of the `Authorization` header, if the request used the
/// Bearer scheme. A malformed Bearer value is kept (as an empty token) so
/// that it fails as `invalid_token` rather than as a missing token.
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Bearer(bearer_token(&parts.headers)))
    }
}

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

/// A JSON object body: `Content-Type: application/json`, at most
/// [`MAX_BODY_BYTES`], of a shape that cannot make parsing expensive.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let invalid =
            |m: &str| ApiError(Error::Protocol(ProtocolError::invalid_request(m))).into_response();
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(invalid(
                "Content-Type must be application/json (RFC 7591 §3)",
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(Rejection::PayloadTooLarge.into_response());
        }
        let body: Body = req.into_body();
        let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Rejection::PayloadTooLarge.into_response())
            }
            Err(_) => return Err(invalid("the request body could not be read")),
        };
        check_json_shape(&bytes).map_err(|e| ApiError(e.into()).into_response())?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError(
                ProtocolError::invalid_metadata("the request body must be a JSON object").into(),
            )
            .into_response()),
            Err(e) => Err(ApiError(
                ProtocolError::invalid_metadata(format!("the request body is not valid JSON: {e}"))
                    .into(),
            )
            .into_response()),
        }
    }
}
