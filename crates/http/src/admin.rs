//! The admin API (`/admin/v1/…`): lifecycle actions over organizations,
//! initial access tokens and pending clients. Every handler requires an
//! admin token and calls one service function.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use charter_service::AdminRole;
use charter_store::{InitialAccessToken, Organization};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::error::ApiError;
use crate::extract::{Admin, Context, JsonObject};
use crate::AppState;

fn organization_json(o: &Organization) -> Value {
    json!({"id": o.id, "name": o.name, "status": o.status, "created_at": o.created_at})
}

fn token_json(t: &InitialAccessToken) -> Value {
    json!({
        "id": t.id, "profile": t.profile, "created_at": t.created_at, "expires_at": t.expires_at,
        "revoked": t.revoked, "max_uses": t.max_uses, "uses": t.uses, "allowed_cidr": t.allowed_cidr,
    })
}

fn string_member<'a>(
    body: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a str, ApiError> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        charter_protocol::Error::invalid_request(format!("{name}: required string")).into()
    })
}

pub async fn list_organizations(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let orgs = state.registrar.organizations().await?;
    Ok(
        Json(json!({"organizations": orgs.iter().map(organization_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

pub async fn create_organization(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    let org = state
        .registrar
        .create_organization(string_member(&body, "name")?, &context)
        .await?;
    Ok((StatusCode::CREATED, Json(organization_json(&org))).into_response())
}

#[derive(Deserialize)]
pub struct OrganizationAction {
    name: String,
    action: String,
}

/// `POST /admin/v1/organizations/{name}/{suspend|resume|offboard}` with a `reason`.
pub async fn organization_action(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    Path(OrganizationAction { name, action }): Path<OrganizationAction>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    let to = match action.as_str() {
        "suspend" => "suspended",
        "resume" => "active",
        "offboard" => "offboarded",
        _ => {
            return Err(charter_protocol::Error::invalid_request(
                "action: use suspend, resume or offboard",
            )
            .into())
        }
    };
    let org = state
        .registrar
        .set_organization_status(&name, to, string_member(&body, "reason")?, &context)
        .await?;
    Ok(Json(organization_json(&org)).into_response())
}

pub async fn list_initial_access_tokens(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Path(organization): Path<String>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let tokens = state.registrar.initial_access_tokens(&organization).await?;
    Ok(
        Json(json!({"initial_access_tokens": tokens.iter().map(token_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

pub async fn revoke_initial_access_token(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    state
        .registrar
        .revoke_initial_access_token(&id, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct ClientAction {
    client_id: String,
    action: String,
}

/// `POST /admin/v1/clients/{client_id}/{approve|reject}` with a `reason`
/// and, for approvals, an optional `valid_for` in seconds.
pub async fn client_action(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    Path(ClientAction { client_id, action }): Path<ClientAction>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let needed = match action.as_str() {
        "approve" | "reject" => AdminRole::Approver,
        _ => AdminRole::Admin,
    };
    admin.require(needed)?;
    let context = context.acting_as(&admin);
    let reason = string_member(&body, "reason")?;
    let record = match action.as_str() {
        "revoke" => {
            state
                .registrar
                .revoke_client(&client_id, reason, &context)
                .await?;
            serde_json::json!({"client_id": client_id, "status": "revoked"})
        }
        "delete" => {
            state
                .registrar
                .delete_client_as_admin(&client_id, reason, &context)
                .await?;
            serde_json::json!({"client_id": client_id, "deleted": true})
        }
        "rotate-secret" => {
            let info = state.registrar.rotate_secret(&client_id, &context).await?;
            return Ok((crate::no_store_headers(), Json(info.to_json())).into_response());
        }
        "approve" => {
            let valid_for = match body.get("valid_for") {
                None => None,
                Some(v) => Some(v.as_i64().ok_or_else(|| {
                    charter_protocol::Error::invalid_request(
                        "valid_for: must be an integer number of seconds",
                    )
                })?),
            };
            state
                .registrar
                .approve(&client_id, reason, valid_for, &context)
                .await?
        }
        "reject" => state.registrar.reject(&client_id, reason, &context).await?,
        _ => {
            return Err(charter_protocol::Error::invalid_request(
                "action: use approve, reject, revoke, delete or rotate-secret",
            )
            .into())
        }
    };
    Ok(Json(record).into_response())
}

/// `POST /admin/v1/admin-tokens` with a `role`: a new admin token, shown once.
pub async fn issue_admin_token(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let role = string_member(&body, "role")?;
    let role = AdminRole::parse(role).ok_or_else(|| {
        charter_protocol::Error::invalid_request("role: use read_only, approver or admin")
    })?;
    let (id, secret) = state
        .registrar
        .issue_admin_token(role, &admin, &context)
        .await?;
    let body = json!({"id": id, "role": role.as_str(), "admin_token": secret.expose()});
    Ok((StatusCode::CREATED, crate::no_store_headers(), Json(body)).into_response())
}

/// `POST /admin/v1/lifecycle/sweep`: run the lifecycle sweep and reaper now
/// (it also runs every minute): lapse approvals past their end, expire
/// clients left pending too long, past their expiry or never used, delete
/// expired clients after the retention period.
pub async fn sweep(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Context(context): Context,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::Admin)?;
    let context = context.acting_as(&admin);
    Ok(Json(
        state
            .registrar
            .sweep(charter_service::now(), &context)
            .await?,
    )
    .into_response())
}

/// `GET /admin/v1/reports/clients`: clients expiring within N days, unused
/// for N days, pending, by organization or registration path.
pub async fn client_report(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    axum::extract::Query(query): axum::extract::Query<charter_service::reports::ReportQuery>,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    Ok(Json(state.registrar.client_report(&query).await?).into_response())
}

/// `GET /admin/v1/fetch/stats`: the outbound fetcher's counters (requests,
/// cache hits, refusals and errors by reason).
pub async fn fetch_stats(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    let body = match state.registrar.fetch_stats() {
        None => serde_json::json!({"enabled": false}),
        Some(s) => serde_json::json!({
            "enabled": true,
            "requests": s.requests,
            "cache_hits": s.cache_hits,
            "negative_hits": s.negative_hits,
            "sent": s.sent,
            "fetched": s.fetched,
            "fresh_rate_limited": s.fresh_rate_limited,
            "refusals": s.refusals,
            "errors": s.errors,
            "cache_entries": s.cache_entries,
        }),
    };
    Ok(Json(body).into_response())
}

/// `GET /admin/v1/reports/counts`: clients by organization, registration path and status.
pub async fn client_counts(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
) -> Result<Response, ApiError> {
    admin.require(AdminRole::ReadOnly)?;
    Ok(Json(state.registrar.client_counts().await?).into_response())
}
