//! The HTTP surface: the axum router, request extraction, and the one
//! function that maps service errors to responses.
//!
//! Handlers stay thin: extract, call one service function, map the result.
//! This is the only crate that knows status codes and headers.

mod admin;
mod authorize;
mod discovery;
mod error;
mod extract;
mod handlers;
mod limits;
mod openapi;
mod pages;
mod token;
mod users;

use axum::http::{header, HeaderValue, Method};
use axum::routing::{delete, get, post};
use axum::Router;
use charter_config::Issuer;
use charter_service::{KeyRing, Registrar, TokenService};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

/// The largest request body accepted anywhere (RFC 7591 requests are tiny).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What handlers share.
pub struct AppState {
    pub registrar: Registrar,
    pub tokens: TokenService,
    pub keys: Arc<KeyRing>,
    pub usage: Arc<charter_service::UsageRecorder>,
    /// The built-in end-user directory (admin API; the sign-in flow sees
    /// it as a `charter_service::UserDirectory`).
    pub users: Arc<charter_service::LocalUsers>,
    pub authorizer: charter_service::Authorizer,
    pub store: Arc<dyn charter_store::Store>,
    pub issuer: Issuer,
    /// Pre-rendered JSON documents: discovery never changes while running.
    pub oauth_metadata: String,
    pub openid_metadata: String,
    pub admin_openapi: String,
    pub limits: limits::Limits,
}

/// What [`AppState::new`] is built from.
pub struct Parts {
    pub registrar: Registrar,
    pub tokens: TokenService,
    pub keys: Arc<KeyRing>,
    pub usage: Arc<charter_service::UsageRecorder>,
    pub users: Arc<charter_service::LocalUsers>,
    pub authorizer: charter_service::Authorizer,
    pub store: Arc<dyn charter_store::Store>,
    pub issuer: Issuer,
    pub limits: charter_config::LimitsConfig,
    pub anonymous_per_minute: Option<u32>,
    /// Registrations without a token that a software statement may admit,
    /// per source and minute; `None` when statements are off.
    pub statements_per_minute: Option<u32>,
    /// Whether metadata-document client ids are accepted (discovery says so).
    pub metadata_documents: bool,
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        let issuer = parts.issuer;
        Self {
            limits: limits::Limits::new(
                parts.limits,
                parts.anonymous_per_minute,
                parts.statements_per_minute,
            ),
            oauth_metadata: discovery::oauth_metadata(&issuer, parts.metadata_documents)
                .to_string(),
            openid_metadata: discovery::openid_metadata(&issuer, parts.metadata_documents)
                .to_string(),
            admin_openapi: openapi::document(issuer.as_str()).to_string(),
            registrar: parts.registrar,
            tokens: parts.tokens,
            keys: parts.keys,
            usage: parts.usage,
            users: parts.users,
            authorizer: parts.authorizer,
            store: parts.store,
            issuer,
        }
    }
}

/// Runs the background work until the returned task is aborted: the
/// lifecycle sweep and reaper every minute, the signing-key schedule every
/// [`KeyRing::refresh_interval`], and the `last_used_at` flush.
pub fn spawn_background(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(Duration::from_secs(60));
        let mut keys = tokio::time::interval(state.keys.refresh_interval());
        let mut flush = tokio::time::interval(state.tokens.lifecycle().last_used_flush_interval);
        for timer in [&mut sweep, &mut keys, &mut flush] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let context = charter_service::RequestContext {
            admin: Some("system".into()),
            ..Default::default()
        };
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    if let Err(e) = state.registrar.sweep(charter_service::now(), &context).await {
                        tracing::error!(error = %e, "lifecycle sweep failed");
                    }
                }
                _ = keys.tick() => {
                    if let Err(e) = state.keys.refresh(state.store.as_ref(), charter_service::now()).await {
                        tracing::error!(error = %e, "signing key refresh failed");
                    }
                }
                _ = flush.tick() => {
                    if let Err(e) = state.usage.flush(state.store.as_ref()).await {
                        tracing::warn!(error = %e, "last_used_at flush failed; kept for the next one");
                    }
                }
            }
        }
    })
}

/// Builds the application. Every endpoint lives under the issuer's path;
/// the RFC 8414 metadata sits at the host root with the issuer path
/// appended (RFC 8414 §3.1).
pub fn router(state: Arc<AppState>) -> Router {
    let base = state.issuer.path().to_owned();
    // Metadata, keys and registration are called from browsers by
    // web-based agents: CORS is open for them (OIDC Discovery §4, RFC 8414 §3).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::HeaderName::from_static("dpop-nonce"),
        ]);

    let public = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(handlers::openid_metadata),
        )
        .route("/jwks", get(handlers::jwks))
        .route("/token", post(token::token))
        .route("/introspect", post(token::introspect))
        .route("/revoke", post(token::revoke))
        .route(
            "/register/{client_id}/rotate-secret",
            post(handlers::rotate_own_secret),
        )
        .route("/register", post(handlers::register))
        .route(
            "/register/{client_id}",
            get(handlers::read_client)
                .put(handlers::update_client)
                .delete(handlers::delete_client),
        )
        .route(
            "/userinfo",
            get(authorize::userinfo).post(authorize::userinfo),
        )
        .layer(cors.clone())
        // The authorization endpoint and its forms are for browsers at the
        // top level only: no CORS (checklist DISC-16).
        .route(
            "/authorize",
            get(authorize::authorize).post(authorize::authorize),
        )
        .route("/authorize/login", post(authorize::login))
        .route("/authorize/consent", post(authorize::consent));
    let admin = Router::new()
        .route(
            "/admin/v1/organizations",
            get(admin::list_organizations).post(admin::create_organization),
        )
        .route(
            "/admin/v1/organizations/{name}/{action}",
            post(admin::organization_action),
        )
        .route(
            "/admin/v1/organizations/{organization}/initial-access-tokens",
            get(admin::list_initial_access_tokens).post(handlers::issue_initial_access_token),
        )
        .route(
            "/admin/v1/initial-access-tokens/{id}/revoke",
            post(admin::revoke_initial_access_token),
        )
        .route(
            "/admin/v1/clients/{client_id}/{action}",
            post(admin::client_action),
        )
        .route("/admin/v1/admin-tokens", post(admin::issue_admin_token))
        .route(
            "/admin/v1/users",
            get(users::list_users).post(users::create_user),
        )
        .route("/admin/v1/users/{id}/disable", post(users::disable_user))
        .route("/admin/v1/users/{id}/enable", post(users::enable_user))
        .route("/admin/v1/users/{id}/consents", get(users::list_consents))
        .route(
            "/admin/v1/users/{id}/consents/{client_id}",
            delete(users::revoke_consent),
        )
        .route("/admin/v1/lifecycle/sweep", post(admin::sweep))
        .route("/admin/v1/reports/clients", get(admin::client_report))
        .route("/admin/v1/reports/counts", get(admin::client_counts))
        .route("/admin/v1/fetch/stats", get(admin::fetch_stats))
        .route("/admin/v1/policy/check", post(handlers::check_policy))
        .route("/admin/v1/audit", get(handlers::audit_entries))
        .route("/admin/v1/audit/verify", get(handlers::verify_audit))
        .route("/admin/v1/openapi.json", get(handlers::admin_openapi));
    let under_issuer = public.merge(admin);

    let mut app = Router::new().route(
        &format!("/.well-known/oauth-authorization-server{base}"),
        get(handlers::oauth_metadata).layer(cors.clone()),
    );
    if base.is_empty() {
        app = app.merge(under_issuer);
    } else {
        // MCP clients also probe the path-appended OIDC form; serve the
        // same document there rather than a 404 (checklist DISC-03).
        app = app
            .route(
                &format!("/.well-known/openid-configuration{base}"),
                get(handlers::openid_metadata).layer(cors),
            )
            .nest(&base, under_issuer);
    }
    app.fallback(handlers::not_found)
        .with_state(state)
        // A slow or stalled client cannot hold a request open: the body must
        // arrive within 10 s and the whole request finish within 30 s.
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(10)))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Headers every response that carries credentials must have (RFC 6749 §5.1).
pub(crate) fn no_store_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}
