//! The token (RFC 6749 §3.2), introspection (RFC 7662) and revocation
//! (RFC 7009) endpoints: form bodies, client credentials from the
//! `Authorization` header or the body, one service call each.

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use charter_protocol::capabilities::TOKEN_GRANT_TYPES;
use charter_protocol::{Error as ProtocolError, ErrorCode, GrantType};
use charter_service::{ClientCredentials, Error, ProofSite, UsableClient};
use http_body_util::{BodyExt, Limited};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::{ApiError, Rejection};
use crate::extract::Context;
use crate::{no_store_headers, AppState, MAX_BODY_BYTES};

/// Parameters that may appear more than once (RFC 8707 §2: `resource`).
const REPEATABLE: [&str; 1] = ["resource"];

/// An `application/x-www-form-urlencoded` body (RFC 6749 §3.2, RFC 7662
/// §2.1, RFC 7009 §2.1). A repeated parameter is refused (RFC 6749 §3.1),
/// except `resource`; an empty value counts as absent.
pub struct Form {
    single: HashMap<String, String>,
    resources: Vec<String>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.single.remove(name)
    }

    fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name).ok_or_else(|| {
            ProtocolError::invalid_request(format!("{name}: required parameter is missing")).into()
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        form(&parts.headers, body).await
    }
}

async fn form(headers: &HeaderMap, body: Body) -> Result<Form, Response> {
    let invalid = |m: &str| ApiError(ProtocolError::invalid_request(m).into()).into_response();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(invalid(
            "Content-Type must be application/x-www-form-urlencoded (RFC 6749 section 3.2)",
        ));
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Rejection::PayloadTooLarge.into_response())
        }
        Err(_) => return Err(invalid("the request body could not be read")),
    };
    let mut single = HashMap::new();
    let mut resources = Vec::new();
    for (name, value) in url::form_urlencoded::parse(&bytes) {
        if value.is_empty() {
            continue;
        }
        if REPEATABLE.contains(&name.as_ref()) {
            resources.push(value.into_owned());
            continue;
        }
        if single
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(invalid(&format!(
                "{name}: repeated parameter (RFC 6749 section 3.1)"
            )));
        }
    }
    Ok(Form { single, resources })
}

/// Client credentials of the request: `Authorization: Basic` with the
/// form-encoded id and secret (RFC 6749 §2.3.1), or the body parameters.
fn credentials(headers: &HeaderMap, form: &mut Form) -> Result<ClientCredentials, Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let basic = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(ProtocolError::invalid_request(
                "more than one Authorization header",
            )
            .into())
        }
        (Some(value), None) => Some(basic_credentials(value.to_str().ok()).ok_or_else(|| {
            Error::InvalidClient {
                description: "the Authorization header must be Basic with the form-encoded client_id and client_secret (RFC 6749 section 2.3.1)".into(),
                via_header: true,
            }
        })?),
    };
    Ok(ClientCredentials {
        basic,
        client_id: form.take("client_id"),
        client_secret: form.take("client_secret"),
        client_assertion_type: form.take("client_assertion_type"),
        client_assertion: form.take("client_assertion"),
        may_fetch: true,
    })
}

fn basic_credentials(value: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = value?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // application/x-www-form-urlencoded decoding of each whole part:
    // '+' is a space, %XX an octet; nothing else is special.
    let unescape = |s: &str| -> Option<String> {
        let spaced = s.replace('+', " ");
        let text = percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()?
            .into_owned();
        (!text.is_empty()).then_some(text)
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Authenticates the client. Failures count against the source, and a
/// source over its limit gets 429 instead of 401; a request whose
/// credentials verify is never refused for its address, since many clients
/// may share one (a proxy, a NAT).
async fn authenticate(
    state: &AppState,
    source: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    form: &mut Form,
    probe_jti: Option<&str>,
) -> Result<UsableClient, Response> {
    let result = match credentials(headers, form) {
        Ok(mut credentials) => {
            // A metadata-document client_id may make the server fetch
            // before any credential is checked; a source over its failure
            // limit may use stored copies but makes it fetch nothing.
            // (Only asked when a document could be named: the common path
            // takes no lock for it.)
            let document = |id: &str| charter_protocol::is_document_client_id(id);
            let may_name_document = credentials.client_id.as_deref().is_some_and(document)
                || credentials
                    .basic
                    .as_ref()
                    .is_some_and(|(id, _)| document(id))
                || credentials.client_assertion.is_some();
            if may_name_document {
                credentials.may_fetch = state.limits.check_blocked(source).is_ok();
            }
            state
                .tokens
                .authenticate_probing(credentials, probe_jti)
                .await
        }
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        if matches!(e, Error::InvalidClient { .. }) {
            state.limits.record_failure(source);
            if let Err(wait) = state.limits.check_blocked(source) {
                return Rejection::TooManyRequests(wait).into_response();
            }
        }
        ApiError(e).into_response()
    })
}

/// The peer address, for rate limiting failed authentications.
pub struct Peer(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Every `DPoP` header value (RFC 9449 §4.1); more than one is refused by
/// the service.
pub(crate) fn dpop_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect()
}

/// RFC 6749 §3.2: the token endpoint.
pub async fn token(
    State(state): State<Arc<AppState>>,
    Peer(source): Peer,
    Context(context): Context,
    headers: HeaderMap,
    mut form: Form,
) -> Result<Response, Response> {
    let fail = |e: Error| ApiError(e).into_response();
    let requested = form.require("grant_type").map_err(fail)?;
    // Refused before the client authenticates: the list is the one
    // discovery advertises (`capabilities::TOKEN_GRANT_TYPES`).
    let Some(grant_type) = GrantType::parse(requested).filter(|g| TOKEN_GRANT_TYPES.contains(g))
    else {
        let served: Vec<&str> = TOKEN_GRANT_TYPES.iter().map(|g| g.as_str()).collect();
        return Err(fail(
            ProtocolError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type: {requested:?} is not supported; use {}",
                    served.join(", ")
                ),
            )
            .into(),
        ));
    };
    let client = authenticate(&state, source, &headers, &mut form, None).await?;
    let proofs = dpop_headers(&headers);
    // Most token requests carry no proof: nothing to build for them.
    let dpop = if proofs.is_empty() {
        None
    } else {
        state
            .tokens
            .dpop_proof(
                &proofs,
                "POST",
                &state.issuer.endpoint("/token"),
                None,
                ProofSite::TokenEndpoint,
            )
            .await
            .map_err(fail)?
    };
    let tokens = &state.tokens;
    let body = match grant_type {
        GrantType::ClientCredentials => {
            tokens.client_credentials(&client, form.get("scope"), &form.resources, dpop.as_ref())
        }
        GrantType::AuthorizationCode => {
            tokens
                .authorization_code(
                    &client,
                    form.get("code"),
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                    &form.resources,
                    dpop.as_ref(),
                    &context,
                )
                .await
        }
        GrantType::RefreshToken => {
            tokens
                .refresh(
                    &client,
                    form.get("refresh_token"),
                    form.get("scope"),
                    &form.resources,
                    dpop.as_ref(),
                    &context,
                )
                .await
        }
    }
    .map_err(fail)?;
    let mut response = (no_store_headers(), Json(body)).into_response();
    // RFC 9449 §8.2: the next nonce travels with every DPoP answer.
    if dpop.is_some() && tokens.dpop_config().require_nonce {
        if let Ok(nonce) =
            axum::http::HeaderValue::from_str(&tokens.dpop_nonce(charter_service::now()))
        {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
    }
    Ok(response)
}

/// RFC 7662 §2: introspection by an authenticated client.
pub async fn introspect(
    State(state): State<Arc<AppState>>,
    Peer(source): Peer,
    headers: HeaderMap,
    mut form: Form,
) -> Result<Response, Response> {
    // The token's revocation is read together with the caller's record.
    let probe = form.get("token").and_then(|t| state.tokens.token_id(t));
    let client = authenticate(&state, source, &headers, &mut form, probe.as_deref()).await?;
    let token = form
        .require("token")
        .map_err(|e| ApiError(e).into_response())?;
    let body = state
        .tokens
        .introspect(&client, token)
        .await
        .map_err(|e| ApiError(e).into_response())?;
    Ok((no_store_headers(), Json(body)).into_response())
}

/// RFC 7009 §2: revocation by the client the token was issued to.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Peer(source): Peer,
    Context(context): Context,
    headers: HeaderMap,
    mut form: Form,
) -> Result<Response, Response> {
    let client = authenticate(&state, source, &headers, &mut form, None).await?;
    let token = form
        .require("token")
        .map_err(|e| ApiError(e).into_response())?;
    // token_type_hint is only a hint (RFC 7009 §2.1): every kind is searched.
    state
        .tokens
        .revoke(&client, token, &context)
        .await
        .map_err(|e| ApiError(e).into_response())?;
    Ok((no_store_headers(), axum::http::StatusCode::OK).into_response())
}

#[cfg(test)]
mod tests {
    use super::basic_credentials;
    use base64::Engine;

    fn header(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(
            basic_credentials(Some(&header("my%3Aclient:s%2Bcr+t%25"))),
            Some(("my:client".into(), "s+cr t%".into()))
        );
        assert_eq!(
            basic_credentials(Some(&header("id:secret"))),
            Some(("id".into(), "secret".into()))
        );
        // A raw '&' or '=' is part of the value, not a separator.
        assert_eq!(
            basic_credentials(Some(&header("client1&junk:abc&x=y"))),
            Some(("client1&junk".into(), "abc&x=y".into()))
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic"] {
            assert_eq!(basic_credentials(Some(bad)), None, "{bad}");
        }
        assert_eq!(basic_credentials(Some(&header("no-colon"))), None);
        assert_eq!(basic_credentials(Some(&header(":secret"))), None);
    }
}
