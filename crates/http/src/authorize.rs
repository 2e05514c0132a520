//! The authorization endpoint (RFC 6749 §3.1) and its sign-in and consent
//! forms: parameters and cookies in, one service call, a page or a `303`
//! redirect out.
//!
//! Cookies are `HttpOnly` and `SameSite=Lax` (the request arrives by a
//! top-level navigation from the client). On an https issuer they are
//! `Secure` with the `__Host-` prefix, so no other host or path can set or
//! read them; a plain-http loopback issuer (development and tests) cannot
//! have either.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use charter_service::{Answer, AuthorizeParams, Browser, ConsentForm, Error, LoginForm, Outcome};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;

use crate::error::ApiError;
use crate::extract::Context;
use crate::pages;
use crate::token::{dpop_headers, Peer};
use crate::{AppState, MAX_BODY_BYTES};

/// Parameters that may repeat (RFC 8707 §2).
const REPEATABLE: [&str; 1] = ["resource"];

/// Parses a query string or form body; empty values count as absent
/// (RFC 6749 §3.1).
fn parse_params(bytes: &[u8]) -> AuthorizeParams {
    let mut params = AuthorizeParams::default();
    for (name, value) in url::form_urlencoded::parse(bytes) {
        if value.is_empty() {
            continue;
        }
        if REPEATABLE.contains(&name.as_ref()) {
            params.resources.push(value.into_owned());
            continue;
        }
        if params.single.contains_key(name.as_ref()) {
            if !params.repeated.iter().any(|r| r == name.as_ref()) {
                params.repeated.push(name.into_owned());
            }
            continue;
        }
        params.single.insert(name.into_owned(), value.into_owned());
    }
    params
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn body_bytes(body: Body) -> Option<axum::body::Bytes> {
    Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// The cookie names: `__Host-` prefixed on an https issuer.
struct CookieNames {
    browser: &'static str,
    session: &'static str,
    secure: bool,
}

fn cookie_names(state: &AppState) -> CookieNames {
    if state.issuer.as_str().starts_with("https://") {
        CookieNames {
            browser: "__Host-charter-browser",
            session: "__Host-charter-session",
            secure: true,
        }
    } else {
        CookieNames {
            browser: "charter_browser",
            session: "charter_session",
            secure: false,
        }
    }
}

fn read_cookies(state: &AppState, headers: &HeaderMap) -> Browser {
    let names = cookie_names(state);
    let mut browser = Browser::default();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if name == names.browser {
                browser.binding = Some(value.to_owned());
            } else if name == names.session {
                browser.session = Some(value.to_owned());
            }
        }
    }
    browser
}

fn set_cookie(
    names: &CookieNames,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> Option<HeaderValue> {
    let secure = if names.secure { "; Secure" } else { "" };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}"
    ))
    .ok()
}

/// Turns the service's answer into a page or a `303 See Other`.
fn respond(state: &AppState, answer: Answer) -> Response {
    let names = cookie_names(state);
    let mut response = match &answer.outcome {
        Outcome::Redirect(location) => {
            let Ok(value) = HeaderValue::from_str(location) else {
                return failure(Error::Internal(
                    "a redirect URI that is not a valid header value".into(),
                ));
            };
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, value);
            for (name, value) in [
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ] {
                r.headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            r
        }
        Outcome::Page(page) => pages::render(
            page,
            &state.issuer.endpoint("/authorize/login"),
            &state.issuer.endpoint("/authorize/consent"),
        ),
    };
    if let Some(binding) = &answer.set_binding {
        // The binding cookie lives for the browser session only.
        if let Some(v) = set_cookie(&names, names.browser, binding, None) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if let Some((session, max_age)) = &answer.set_session {
        if let Some(v) = set_cookie(&names, names.session, session, Some(*max_age)) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

fn failure(e: Error) -> Response {
    tracing::error!(error = %e, "authorization endpoint failed");
    pages::render(
        &charter_service::Page::Error {
            status: 500,
            title: "Something went wrong".into(),
            message: "The server could not handle the request. Try again later.".into(),
        },
        "",
        "",
    )
}

/// `GET` and `POST /authorize` (OIDC Core §3.1.2.1 requires both).
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    Peer(source): Peer,
    request: Request,
) -> Response {
    if let Err(wait) = state.limits.check_authorization_source(source) {
        return crate::error::Rejection::TooManyRequests(wait).into_response();
    }
    let (parts, body) = request.into_parts();
    let params = if parts.method == Method::POST {
        if !is_form(&parts.headers) {
            return pages::render(
                &charter_service::Page::Error {
                    status: 400,
                    title: "Invalid request".into(),
                    message: "An authorization request sent by POST must be a form.".into(),
                },
                "",
                "",
            );
        }
        match body_bytes(body).await {
            Some(bytes) => parse_params(&bytes),
            None => {
                return pages::render(
                    &charter_service::Page::Error {
                        status: 413,
                        title: "Invalid request".into(),
                        message: format!(
                            "The authorization request is larger than {MAX_BODY_BYTES} bytes."
                        ),
                    },
                    "",
                    "",
                )
            }
        }
    } else {
        parse_params(parts.uri.query().unwrap_or_default().as_bytes())
    };
    let browser = read_cookies(&state, &parts.headers);
    match state.authorizer.start(params, browser).await {
        Ok(answer) => respond(&state, answer),
        Err(e) => failure(e),
    }
}

/// The fields of a login or consent form; repeats are refused.
async fn form_fields(
    headers: &HeaderMap,
    body: Body,
) -> Option<std::collections::HashMap<String, String>> {
    if !is_form(headers) {
        return None;
    }
    let bytes = body_bytes(body).await?;
    let mut fields = std::collections::HashMap::new();
    for (name, value) in url::form_urlencoded::parse(&bytes) {
        if fields
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some(fields)
}

fn bad_form() -> Response {
    pages::render(
        &charter_service::Page::Error {
            status: 400,
            title: "Invalid request".into(),
            message: "The form was malformed. Go back to the application and start again.".into(),
        },
        "",
        "",
    )
}

/// `POST /authorize/login`. Failed sign-ins count against the source
/// address like failed client authentications.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Peer(source): Peer,
    Context(context): Context,
    request: Request,
) -> Response {
    if let Err(wait) = state.limits.check_blocked(source) {
        return crate::error::Rejection::TooManyRequests(wait).into_response();
    }
    let (parts, body) = request.into_parts();
    let Some(mut fields) = form_fields(&parts.headers, body).await else {
        return bad_form();
    };
    let mut take = |name: &str| fields.remove(name).unwrap_or_default();
    let form = LoginForm {
        interaction: take("interaction"),
        csrf: take("csrf"),
        username: take("username"),
        password: take("password"),
    };
    let browser = read_cookies(&state, &parts.headers);
    match state.authorizer.login(form, browser, &context).await {
        Ok((answer, signed_in)) => {
            if !signed_in {
                state.limits.record_failure(source);
            }
            respond(&state, answer)
        }
        Err(e) => failure(e),
    }
}

/// `POST /authorize/consent`.
pub async fn consent(
    State(state): State<Arc<AppState>>,
    Context(context): Context,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Some(mut fields) = form_fields(&parts.headers, body).await else {
        return bad_form();
    };
    let mut take = |name: &str| fields.remove(name).unwrap_or_default();
    let form = ConsentForm {
        interaction: take("interaction"),
        csrf: take("csrf"),
        decision: take("decision"),
    };
    let browser = read_cookies(&state, &parts.headers);
    match state.authorizer.consent(form, browser, &context).await {
        Ok(answer) => respond(&state, answer),
        Err(e) => failure(e),
    }
}

/// OIDC Core §5.3: `GET` or `POST /userinfo` with the access token.
pub async fn userinfo(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let authorization = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    };
    let result = state
        .tokens
        .userinfo(
            authorization,
            &dpop_headers(&headers),
            method.as_str(),
            &state.issuer.endpoint("/userinfo"),
        )
        .await;
    match result {
        Ok(claims) => (crate::no_store_headers(), axum::Json(claims)).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_params;

    #[test]
    fn repeats_are_noted_and_resources_collected() {
        let p = parse_params(b"client_id=a&scope=x&scope=y&resource=r1&resource=r2&state=");
        assert_eq!(p.repeated, vec!["scope".to_owned()]);
        assert_eq!(p.resources, vec!["r1".to_owned(), "r2".to_owned()]);
        assert!(!p.single.contains_key("state"));
    }
}
