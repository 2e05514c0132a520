//! The admin API over end users of the built-in directory
//! (`/admin/v1/users/…`): create, list, disable and enable users, list and
//! revoke their remembered consents. Creating, disabling, enabling and
//! revoking need the `admin` role; reading needs `read_only`.
//!
//! No answer ever holds a password or its hash: users are written out
//! member by member, never as the stored record.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use charter_service::{AdminRole, Error};
use charter_store::{Consent, User};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

use crate::error::ApiError;
use crate::extract::{Admin, Context, JsonObject};
use crate::AppState;

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id, "username": u.username, "name": u.name, "email": u.email,
        "disabled": u.disabled, "created_at": u.created_at,
    })
}

fn consent_json(c: &Consent) -> Value {
    json!({
        "client_id": c.client_id, "scope": c.scope, "resources": c.resources,
        "granted_at": c.granted_at,
    })
}

fn no_such_user(id: &str) -> ApiError {
    ApiError(Error::NotFound(format!("user: {id:?} does not exist")))
}

/// A string member, `None` when absent or null.
fn optional_string(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(charter_protocol::Error::invalid_request(format!(
            "{name}: must be a string"
        ))
        .into()),
    }
}

fn required_string(body: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    optional_string(body, name)?.ok_or_else(|| {
        charter_protocol::Error::invalid_request(format!("{name}: required string")).into()
    })
}

/// `POST /admin/v1/users` with `{username, password, name?, email?}`: 201
/// with the new user.
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    let user = state
        .users
        .create(
            &required_string(&body, "username")?,
            &required_string(&body, "password")?,
            optional_string(&body, "name")?,
            optional_string(&body, "email")?,
            &context,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// `GET /admin/v1/users?limit=`: users by username.
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let users = state.users.list(query.limit.unwrap_or(1000)).await?;
    Ok(Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()})).into_response())
}

/// `POST /admin/v1/users/{id}/disable`: the user can no longer sign in,
/// their sessions end and their grants are revoked.
pub async fn disable_user(
    state: State<Arc<AppState>>,
    admin: Admin,
    context: Context,
    id: Path<String>,
) -> Result<Response, ApiError> {
    set_disabled(state, admin, context, id, true).await
}

/// `POST /admin/v1/users/{id}/enable`.
pub async fn enable_user(
    state: State<Arc<AppState>>,
    admin: Admin,
    context: Context,
    id: Path<String>,
) -> Result<Response, ApiError> {
    set_disabled(state, admin, context, id, false).await
}

async fn set_disabled(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    Path(id): Path<String>,
    disabled: bool,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    if !state.users.set_disabled(&id, disabled, &context).await? {
        return Err(no_such_user(&id));
    }
    Ok(Json(json!({"id": id, "disabled": disabled})).into_response())
}

/// `GET /admin/v1/users/{id}/consents`: what the user consented to, by client.
pub async fn list_consents(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let consents = state.users.consents(&id).await?;
    Ok(
        Json(json!({"consents": consents.iter().map(consent_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct ConsentPath {
    id: String,
    client_id: String,
}

/// `DELETE /admin/v1/users/{id}/consents/{client_id}`: withdraws the
/// consent and revokes the grants it backs; 204, or 404 if there was none.
pub async fn revoke_consent(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    Path(ConsentPath { id, client_id }): Path<ConsentPath>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    if !state
        .users
        .revoke_consent(&id, &client_id, &context)
        .await?
    {
        return Err(ApiError(Error::NotFound(format!(
            "consent: user {id:?} has no consent for client {client_id:?}"
        ))));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
