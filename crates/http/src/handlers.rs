//! Endpoint handlers: extract, call one service function, map the result.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

use crate::error::{ApiError, Rejection};
use crate::extract::{json_object, Bearer};
use crate::{no_store_headers, AppState};
use charter_service::Error;

fn json_document(body: &str) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_owned(),
    )
        .into_response()
}

pub async fn oauth_metadata(State(state): State<Arc<AppState>>) -> Response {
    json_document(&state.oauth_metadata)
}

pub async fn openid_metadata(State(state): State<Arc<AppState>>) -> Response {
    json_document(&state.openid_metadata)
}

pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut response = json_document(&state.jwks);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

/// The `client_id` path segment; one that cannot be decoded names no
/// client, which the configuration endpoint answers with 401, never 400/404.
fn client_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|_| {
        Error::InvalidToken("the registration access token is not valid for this client").into()
    })
}

/// RFC 7591 §3.1–3.2: authenticate, then read the body, then register.
pub async fn register(
    State(state): State<Arc<AppState>>,
    Bearer(token): Bearer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let grant = state
        .registrar
        .authenticate_iat(token.as_deref())
        .await
        .map_err(into_response)?;
    let body = json_object(&headers, body).await?;
    let info = state
        .registrar
        .register(grant, &body)
        .await
        .map_err(into_response)?;
    Ok((
        StatusCode::CREATED,
        no_store_headers(),
        Json(info.to_json()),
    )
        .into_response())
}

/// RFC 7592 §2.1.
pub async fn read_client(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    Bearer(token): Bearer,
) -> Result<Response, ApiError> {
    let client = state
        .registrar
        .authenticate_rat(&client_id(path)?, token.as_deref())
        .await?;
    let info = state.registrar.read(client).await?;
    Ok((no_store_headers(), Json(info.to_json())).into_response())
}

/// RFC 7592 §2.2: the token is checked before the body is read.
pub async fn update_client(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    Bearer(token): Bearer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let client_id = client_id(path).map_err(IntoResponse::into_response)?;
    let client = state
        .registrar
        .authenticate_rat(&client_id, token.as_deref())
        .await
        .map_err(into_response)?;
    let body = json_object(&headers, body).await?;
    let info = state
        .registrar
        .update(client, &body)
        .await
        .map_err(into_response)?;
    Ok((no_store_headers(), Json(info.to_json())).into_response())
}

/// RFC 7592 §2.3.
pub async fn delete_client(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    Bearer(token): Bearer,
) -> Result<Response, ApiError> {
    let client = state
        .registrar
        .authenticate_rat(&client_id(path)?, token.as_deref())
        .await?;
    state.registrar.delete(client).await?;
    Ok((StatusCode::NO_CONTENT, no_store_headers()).into_response())
}

/// Admin: mint an initial access token for an organization.
pub async fn issue_initial_access_token(
    State(state): State<Arc<AppState>>,
    Path(organization): Path<String>,
    Bearer(token): Bearer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let token = token.ok_or(Error::MissingToken).map_err(into_response)?;
    if !state
        .registrar
        .is_admin(&token)
        .await
        .map_err(into_response)?
    {
        return Err(into_response(Error::InvalidToken(
            "the admin token is not valid",
        )));
    }
    let body = json_object(&headers, body).await?;
    let lifetime = match body.get("expires_in") {
        None => 7 * 86_400,
        Some(v) => v
            .as_i64()
            .filter(|s| (60..=366 * 86_400).contains(s))
            .ok_or_else(|| {
                into_response(charter_protocol::Error::invalid_request(
                    "expires_in: must be an integer number of seconds from 60 to 31622400",
                ))
            })?,
    };
    let (record, secret) = state
        .registrar
        .issue_initial_access_token(&organization, lifetime)
        .await
        .map_err(into_response)?;
    let body = json!({
        "id": record.id,
        "organization": organization,
        "initial_access_token": secret.expose(),
        "expires_at": record.expires_at,
    });
    Ok((StatusCode::CREATED, no_store_headers(), Json(body)).into_response())
}

fn into_response(e: impl Into<Error>) -> Response {
    ApiError(e.into()).into_response()
}

pub async fn not_found() -> Response {
    Rejection::NotFound.into_response()
}
