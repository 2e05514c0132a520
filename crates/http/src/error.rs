//! The single mapping from service errors to HTTP responses: status,
//! `error`, `error_description` and headers (RFC 6749 §5.2, RFC 6750 §3,
//! RFC 7591 §3.2.2). No handler builds an error body itself.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use charter_protocol::ErrorCode;
use charter_service::Error;
use serde_json::json;

/// A service error on its way out.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

/// Errors the HTTP layer itself raises before reaching the service.
pub enum Rejection {
    PayloadTooLarge,
    NotFound,
    /// Rate limited (RFC 6585 §4): retry after this long.
    TooManyRequests(std::time::Duration),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            Rejection::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("request body exceeds {} bytes", crate::MAX_BODY_BYTES),
            ),
            Rejection::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".to_owned(),
            ),
            Rejection::TooManyRequests(wait) => {
                let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                let body = json!({
                    "error": "too_many_requests",
                    "error_description": format!("rate limit exceeded; retry after {seconds} s"),
                });
                let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return response;
            }
        };
        (
            status,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut nonce: Option<&str> = None;
        let (status, code, description, challenge) = match &self.0 {
            Error::Protocol(e) => (
                StatusCode::BAD_REQUEST,
                e.code.as_str(),
                e.description.clone(),
                None,
            ),
            // RFC 6750 §3.1: a request without credentials gets the
            // challenge and no error code or other error information.
            Error::MissingToken => {
                let mut response =
                    (StatusCode::UNAUTHORIZED, crate::no_store_headers()).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Error::InvalidToken(why) => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidToken.as_str(),
                (*why).to_owned(),
                // The description is a fixed server string: no quotes to escape.
                Some(format!(
                    "Bearer error=\"invalid_token\", error_description=\"{why}\""
                )),
            ),
            Error::InvalidClient {
                description,
                via_header,
            } => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidClient.as_str(),
                description.clone(),
                // RFC 6749 §5.2: a client that used the Authorization header
                // gets the challenge of the scheme it used.
                via_header.then(|| "Basic realm=\"charter\", charset=\"UTF-8\"".to_owned()),
            ),
            Error::Forbidden(why) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                why.clone(),
                Some("Bearer error=\"insufficient_scope\"".to_owned()),
            ),
            Error::DpopNonce {
                description,
                nonce: fresh,
            } => {
                nonce = Some(fresh);
                (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::UseDpopNonce.as_str(),
                    description.clone(),
                    None,
                )
            }
            Error::ResourceDpop {
                code,
                description,
                nonce: fresh,
            } => {
                nonce = fresh.as_deref();
                (
                    StatusCode::UNAUTHORIZED,
                    code.as_str(),
                    description.clone(),
                    // RFC 9449 §7.1: the DPoP scheme's challenge names the
                    // error and the algorithms accepted.
                    Some(format!(
                        "DPoP error=\"{}\", algs=\"{}\"",
                        code.as_str(),
                        charter_service::DPOP_SIGNING_ALGS.join(" ")
                    )),
                )
            }
            Error::NotFound(why) => (StatusCode::NOT_FOUND, "not_found", why.clone(), None),
            Error::Conflict(why) => (StatusCode::CONFLICT, "conflict", why.clone(), None),
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error; quote the x-request-id response header when reporting it"
                        .to_owned(),
                    None,
                )
            }
        };
        let description = error_description(&description);
        let mut response = (
            status,
            crate::no_store_headers(),
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response();
        if let Some(nonce) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Restricts a description to the characters RFC 6749 §5.2 allows in
/// `error_description` (%x20-21 / %x23-5B / %x5D-7E): descriptions quote
/// client input, which may hold anything. Double quotes become single
/// quotes, `§` becomes "section ", anything else outside the set becomes `?`.
pub fn error_description(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push('\''),
            '§' => out.push_str("section "),
            '\\' => out.push('/'),
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_description;

    #[test]
    fn descriptions_use_only_the_rfc_6749_character_set() {
        let cleaned = error_description("redirect_uris: \"https://x/\u{e9}\\\n\" (RFC 7591 §2)");
        assert_eq!(
            cleaned,
            "redirect_uris: 'https://x/?/?' (RFC 7591 section 2)"
        );
        assert!(cleaned
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
    }
}
