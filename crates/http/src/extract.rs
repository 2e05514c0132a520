//! Request extraction: bearer tokens (RFC 6750 §2.1) and size-limited JSON
//! object bodies.

use axum::body::Body;
use axum::extract::FromRequestParts;
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

/// Reads a JSON object body: `Content-Type: application/json`, at most
/// [`MAX_BODY_BYTES`], of a shape that cannot make parsing expensive, with no
/// member name repeated. Handlers call this only after the caller has
/// authenticated, so an anonymous request never costs a parse.
pub async fn json_object(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, Response> {
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

/// A top-level JSON object that refuses repeated member names: parsers
/// disagree on which duplicate wins (RFC 8259 §4), so a proxy in front could
/// check a different value from the one stored.
struct UniqueObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "member {key:?} appears more than once"
                        )));
                    }
                    map.insert(key, value);
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}
