//! The admin API's OpenAPI 3.1 document, served at
//! `/admin/v1/openapi.json`. Written by hand next to the router; the
//! integration tests check that every admin route is described.

use serde_json::{json, Value};

/// (method, path, minimum role, summary) of every admin route.
pub const ADMIN_ROUTES: &[(&str, &str, &str, &str)] = &[
    (
        "get",
        "/admin/v1/organizations",
        "read_only",
        "List organizations",
    ),
    (
        "post",
        "/admin/v1/organizations",
        "admin",
        "Create an organization ({name})",
    ),
    (
        "post",
        "/admin/v1/organizations/{name}/{action}",
        "admin",
        "suspend, resume or offboard an organization ({reason})",
    ),
    (
        "get",
        "/admin/v1/organizations/{organization}/initial-access-tokens",
        "read_only",
        "List initial access tokens with usage",
    ),
    (
        "post",
        "/admin/v1/organizations/{organization}/initial-access-tokens",
        "admin",
        "Issue an initial access token ({profile, max_uses, expires_in, allowed_cidr}); shown once",
    ),
    (
        "post",
        "/admin/v1/initial-access-tokens/{id}/revoke",
        "admin",
        "Revoke an initial access token",
    ),
    (
        "post",
        "/admin/v1/clients/{client_id}/{action}",
        "approver",
        "approve ({reason, valid_for}) or reject ({reason}) a pending client (approver); revoke, delete or rotate-secret ({reason}) a client (admin; rotate-secret answers the new secret once)",
    ),
    (
        "post",
        "/admin/v1/lifecycle/sweep",
        "admin",
        "Run the lifecycle sweep and reaper now (also every minute): lapse approvals, expire pending, past-expiry and unused clients, delete expired clients after the retention",
    ),
    (
        "get",
        "/admin/v1/reports/clients",
        "read_only",
        "Clients by expiring_within_days, unused_for_days, status, organization, registration_path, limit",
    ),
    (
        "get",
        "/admin/v1/reports/counts",
        "read_only",
        "Client counts by organization, registration path and status",
    ),
    (
        "get",
        "/admin/v1/fetch/stats",
        "read_only",
        "The outbound fetcher's counters: requests, cache hits, documents fetched, refusals and errors by reason",
    ),
    (
        "post",
        "/admin/v1/admin-tokens",
        "admin",
        "Issue an admin token with a role ({role}); shown once",
    ),
    (
        "get",
        "/admin/v1/users",
        "read_only",
        "List end users of the built-in directory by username (?limit=); never their password hashes",
    ),
    (
        "post",
        "/admin/v1/users",
        "admin",
        "Create an end user ({username, password, name, email}); username 1-64 of A-Za-z0-9._@- (stored lower case), password 12-256 characters; 409 if the username is taken",
    ),
    (
        "post",
        "/admin/v1/users/{id}/disable",
        "admin",
        "Disable an end user: no sign-in, sessions end, grants and their tokens revoked",
    ),
    (
        "post",
        "/admin/v1/users/{id}/enable",
        "admin",
        "Enable a disabled end user again",
    ),
    (
        "get",
        "/admin/v1/users/{id}/consents",
        "read_only",
        "An end user's remembered consents, by client",
    ),
    (
        "delete",
        "/admin/v1/users/{id}/consents/{client_id}",
        "admin",
        "Revoke an end user's consent for a client and every grant it backs, with their tokens; 204, or 404 if there is none",
    ),
    (
        "post",
        "/admin/v1/policy/check",
        "read_only",
        "Dry-run the registration policy for a request body (?profile=&organization=)",
    ),
    (
        "get",
        "/admin/v1/audit",
        "read_only",
        "Audit entries (?after=&limit=&client_id=&organization_id=&actor=&since=)",
    ),
    (
        "get",
        "/admin/v1/audit/verify",
        "read_only",
        "Verify the audit hash chain",
    ),
];

pub fn document(issuer: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, role, summary) in ADMIN_ROUTES {
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({
            "summary": summary,
            "description": format!("Requires an admin token with role {role} or higher."),
            "security": [{"adminToken": []}],
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "201": {"description": "Created", "content": {"application/json": {}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"description": "Missing or invalid admin token"},
                "403": {"description": "The token's role is insufficient (insufficient_scope)"},
                "429": {"description": "Rate limited; see Retry-After"},
            },
        });
        if *method == "post" {
            operation["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        if *method == "delete" {
            operation["responses"]["204"] = json!({"description": "Done"});
        }
        if path.starts_with("/admin/v1/users/") {
            operation["responses"]["404"] = json!({"$ref": "#/components/responses/Error"});
        }
        if (*method, *path) == ("post", "/admin/v1/users") {
            operation["responses"]["409"] = json!({"$ref": "#/components/responses/Error"});
        }
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|item| item.insert(method.to_string(), operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Charter admin API", "version": "v1"},
        "servers": [{"url": issuer}],
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {
                "description": "Refused; error and error_description name the rule",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
                    "required": ["error"],
                }}},
            }},
        },
    })
}
