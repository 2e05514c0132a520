//! Endpoint handlers: extract, call one service function, map the result.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use charter_service::AdminRole;
use serde_json::json;
use std::sync::Arc;

use crate::error::{ApiError, Rejection};
use crate::extract::{Admin, ConfiguredClient, Context, JsonObject, Registration};
use crate::{no_store_headers, AppState};

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

/// The JWK Set: every published key, including the next one before it
/// signs. Caches may keep it for less time than a new key is published
/// ahead of signing.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut response = json_document(&state.keys.jwks());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "public, max-age={}",
        state.keys.jwks_max_age().as_secs()
    )) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// A new client secret, requested by the client with its registration
/// access token; the old secret keeps working for the rotation overlap.
pub async fn rotate_own_secret(
    State(state): State<Arc<AppState>>,
    ConfiguredClient(client): ConfiguredClient,
    Context(context): Context,
) -> Result<Response, ApiError> {
    let info = state.registrar.rotate_own_secret(client, &context).await?;
    Ok((no_store_headers(), Json(info.to_json())).into_response())
}

/// RFC 7591 §3.1–3.2.
pub async fn register(
    State(state): State<Arc<AppState>>,
    Registration(grant): Registration,
    Context(context): Context,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let info = state.registrar.register(grant, &body, &context).await?;
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
    ConfiguredClient(client): ConfiguredClient,
) -> Result<Response, ApiError> {
    let info = state.registrar.read(client).await?;
    Ok((no_store_headers(), Json(info.to_json())).into_response())
}

/// RFC 7592 §2.2.
pub async fn update_client(
    State(state): State<Arc<AppState>>,
    ConfiguredClient(client): ConfiguredClient,
    Context(context): Context,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let info = state.registrar.update(client, &body, &context).await?;
    Ok((no_store_headers(), Json(info.to_json())).into_response())
}

/// RFC 7592 §2.3.
pub async fn delete_client(
    State(state): State<Arc<AppState>>,
    ConfiguredClient(client): ConfiguredClient,
    Context(context): Context,
) -> Result<Response, ApiError> {
    state.registrar.delete(client, &context).await?;
    Ok((StatusCode::NO_CONTENT, no_store_headers()).into_response())
}

/// Admin: mint an initial access token for an organization.
pub async fn issue_initial_access_token(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    Path(organization): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    let lifetime = match body.get("expires_in") {
        None => 7 * 86_400,
        Some(v) => v
            .as_i64()
            .filter(|s| (60..=366 * 86_400).contains(s))
            .ok_or_else(|| {
                charter_protocol::Error::invalid_request(
                    "expires_in: must be an integer number of seconds from 60 to 31622400",
                )
            })?,
    };
    let profile = match body.get("profile") {
        None => None,
        Some(v) => Some(v.as_str().ok_or_else(|| {
            charter_protocol::Error::invalid_request("profile: must be a string")
        })?),
    };
    let max_uses = match body.get("max_uses") {
        None => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            charter_protocol::Error::invalid_request("max_uses: must be an integer")
        })?),
    };
    let allowed_cidr = match body.get("allowed_cidr") {
        None => None,
        Some(v) => Some(v.as_str().ok_or_else(|| {
            charter_protocol::Error::invalid_request("allowed_cidr: must be a string")
        })?),
    };
    let (record, secret) = state
        .registrar
        .issue_initial_access_token(
            &organization,
            lifetime,
            profile,
            max_uses,
            allowed_cidr,
            &context,
        )
        .await?;
    let body = json!({
        "id": record.id,
        "organization": organization,
        "initial_access_token": secret.expose(),
        "expires_at": record.expires_at,
        "profile": record.profile,
        "max_uses": record.max_uses,
        "allowed_cidr": record.allowed_cidr,
    });
    Ok((StatusCode::CREATED, no_store_headers(), Json(body)).into_response())
}

/// Admin: dry-run the registration policy for a request body. The query
/// names the profile (default: the policy's default) and organization
/// (default: `default`); nothing is created.
pub async fn check_policy(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Query(query): Query<PolicyCheckQuery>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let profile = query
        .profile
        .unwrap_or_else(|| state.registrar.policy().default_profile.clone());
    let organization = query.organization.unwrap_or_else(|| "default".into());
    let decision = state
        .registrar
        .check_policy(&organization, &profile, &body)
        .await?;
    Ok(Json(decision).into_response())
}

#[derive(serde::Deserialize)]
pub struct PolicyCheckQuery {
    profile: Option<String>,
    organization: Option<String>,
}

/// Admin: check the audit chain from the first entry to the last.
pub async fn verify_audit(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    Ok(Json(state.registrar.verify_audit().await?.to_json()).into_response())
}

/// Admin: audit entries, paged by sequence number and filtered by client,
/// organization, actor or time.
pub async fn audit_entries(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Query(page): Query<AuditPage>,
    Query(filter): Query<charter_service::AuditFilter>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let entries = state
        .registrar
        .audit_entries(page.after.unwrap_or(0), page.limit.unwrap_or(100), &filter)
        .await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[derive(serde::Deserialize)]
pub struct AuditPage {
    after: Option<i64>,
    limit: Option<u32>,
}

/// The admin API's OpenAPI document (public: it describes, it grants nothing).
pub async fn admin_openapi(State(state): State<Arc<AppState>>) -> Response {
    json_document(&state.admin_openapi)
}

pub async fn not_found() -> Response {
    Rejection::NotFound.into_response()
}
