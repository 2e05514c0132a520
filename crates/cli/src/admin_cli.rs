//! `charter org|iat|client|admin-token …`: the admin API from the command
//! line. Each command is one HTTP call to `/admin/v1/…`; `--json` prints the
//! server's answer as is, otherwise a table for people.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the server is and how to authenticate to it.
#[derive(Args)]
pub struct Connection {
    /// The server's issuer URL.
    #[arg(
        long,
        env = "CHARTER_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// File holding an admin token (used when CHARTER_ADMIN_TOKEN is unset).
    #[arg(long, default_value = "charter-data/admin-token", global = true)]
    token_file: PathBuf,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// List organizations.
    List,
    /// Create an organization.
    Create { name: String },
    /// Suspend an organization: it registers nothing until resumed.
    Suspend {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended organization.
    Resume {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Offboard an organization: all its clients and tokens are revoked.
    Offboard {
        name: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum IatCommand {
    /// Issue an initial access token (shown once).
    Issue {
        #[arg(long)]
        org: String,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long)]
        max_uses: Option<i64>,
        /// Lifetime in seconds (default 7 days).
        #[arg(long)]
        expires_in: Option<i64>,
        #[arg(long)]
        allowed_cidr: Option<String>,
    },
    /// List an organization's tokens with their usage.
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Approve a pending client.
    Approve {
        client_id: String,
        #[arg(long)]
        reason: String,
        /// How long the approval holds, in seconds.
        #[arg(long)]
        valid_for: Option<i64>,
    },
    /// Reject a pending client.
    Reject {
        client_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke a client: refused from its next request, its tokens inactive.
    Revoke {
        client_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Delete a client.
    Delete {
        client_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Give a client a new secret (shown once); the old one works for the overlap.
    RotateSecret {
        client_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Report clients: expiring soon, unused, pending, by organization or path.
    Report {
        /// Clients whose registration ends within N days.
        #[arg(long)]
        expiring_within_days: Option<i64>,
        /// Clients not used for N days.
        #[arg(long)]
        unused_for_days: Option<i64>,
        /// active, pending, rejected, revoked or expired.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        organization: Option<String>,
        /// iat or anonymous.
        #[arg(long)]
        registration_path: Option<String>,
    },
    /// Client counts by organization, registration path and status.
    Counts,
}

#[derive(Subcommand)]
pub enum AdminTokenCommand {
    /// Issue an admin token with a role: read_only, approver or admin (shown once).
    Issue {
        #[arg(long)]
        role: String,
    },
}

pub enum Request {
    Get(String),
    Post(String, Value),
}

pub fn org_request(command: OrgCommand) -> Request {
    match command {
        OrgCommand::List => Request::Get("/admin/v1/organizations".into()),
        OrgCommand::Create { name } => {
            Request::Post("/admin/v1/organizations".into(), json!({"name": name}))
        }
        OrgCommand::Suspend { name, reason } => Request::Post(
            format!("/admin/v1/organizations/{name}/suspend"),
            json!({"reason": reason}),
        ),
        OrgCommand::Resume { name, reason } => Request::Post(
            format!("/admin/v1/organizations/{name}/resume"),
            json!({"reason": reason}),
        ),
        OrgCommand::Offboard { name, reason } => Request::Post(
            format!("/admin/v1/organizations/{name}/offboard"),
            json!({"reason": reason}),
        ),
    }
}

pub fn iat_request(command: IatCommand) -> Request {
    match command {
        IatCommand::Issue {
            org,
            profile,
            max_uses,
            expires_in,
            allowed_cidr,
        } => {
            let mut body = serde_json::Map::new();
            for (key, value) in [
                ("profile", profile.map(Value::from)),
                ("max_uses", max_uses.map(Value::from)),
                ("expires_in", expires_in.map(Value::from)),
                ("allowed_cidr", allowed_cidr.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body.insert(key.into(), value);
                }
            }
            Request::Post(
                format!("/admin/v1/organizations/{org}/initial-access-tokens"),
                Value::Object(body),
            )
        }
        IatCommand::List { org } => Request::Get(format!(
            "/admin/v1/organizations/{org}/initial-access-tokens"
        )),
        IatCommand::Revoke { id } => Request::Post(
            format!("/admin/v1/initial-access-tokens/{id}/revoke"),
            json!({}),
        ),
    }
}

pub fn client_request(command: ClientCommand) -> Request {
    match command {
        ClientCommand::Approve {
            client_id,
            reason,
            valid_for,
        } => {
            let mut body = json!({"reason": reason});
            if let Some(secs) = valid_for {
                body["valid_for"] = json!(secs);
            }
            Request::Post(format!("/admin/v1/clients/{client_id}/approve"), body)
        }
        ClientCommand::Reject { client_id, reason } => Request::Post(
            format!("/admin/v1/clients/{client_id}/reject"),
            json!({"reason": reason}),
        ),
        ClientCommand::Revoke { client_id, reason } => Request::Post(
            format!("/admin/v1/clients/{client_id}/revoke"),
            json!({"reason": reason}),
        ),
        ClientCommand::Delete { client_id, reason } => Request::Post(
            format!("/admin/v1/clients/{client_id}/delete"),
            json!({"reason": reason}),
        ),
        ClientCommand::RotateSecret { client_id, reason } => Request::Post(
            format!("/admin/v1/clients/{client_id}/rotate-secret"),
            json!({"reason": reason}),
        ),
        ClientCommand::Report {
            expiring_within_days,
            unused_for_days,
            status,
            organization,
            registration_path,
        } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in [
                (
                    "expiring_within_days",
                    expiring_within_days.map(|d| d.to_string()),
                ),
                ("unused_for_days", unused_for_days.map(|d| d.to_string())),
                ("status", status),
                ("organization", organization),
                ("registration_path", registration_path),
            ] {
                if let Some(value) = value {
                    query.append_pair(name, &value);
                }
            }
            Request::Get(format!("/admin/v1/reports/clients?{}", query.finish()))
        }
        ClientCommand::Counts => Request::Get("/admin/v1/reports/counts".into()),
    }
}

pub fn admin_token_request(command: AdminTokenCommand) -> Request {
    match command {
        AdminTokenCommand::Issue { role } => {
            Request::Post("/admin/v1/admin-tokens".into(), json!({"role": role}))
        }
    }
}

/// Sends `request`, prints the answer, and exits 0 on success, 1 on a
/// refusal, 2 when the server cannot be reached or no token is found.
pub async fn call(connection: Connection, request: Request) -> ExitCode {
    let token = match std::env::var("CHARTER_ADMIN_TOKEN") {
        Ok(token) => token,
        Err(_) => {
            match std::fs::read_to_string(&connection.token_file) {
                Ok(text) => text.trim().to_owned(),
                Err(e) => {
                    eprintln!("charter: no admin token: set CHARTER_ADMIN_TOKEN or --token-file ({}: {e})", connection.token_file.display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    let client = reqwest::Client::new();
    let base = connection.server.trim_end_matches('/');
    let builder = match &request {
        Request::Get(path) => client.get(format!("{base}{path}")),
        Request::Post(path, body) => client.post(format!("{base}{path}")).json(body),
    };
    let response = match builder.bearer_auth(token).send().await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("charter: cannot reach {base}: {e}");
            return ExitCode::from(2);
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!(
            "charter: {status}: {}",
            body.get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        if connection.json {
            println!("{body}");
        }
        return ExitCode::from(1);
    }
    if connection.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print_table(&body);
    }
    ExitCode::SUCCESS
}

/// Prints a list member as an aligned table, or an object as key/value lines.
fn print_table(body: &Value) {
    let rows = [
        "organizations",
        "initial_access_tokens",
        "clients",
        "counts",
    ]
    .iter()
    .find_map(|k| body.get(*k).and_then(Value::as_array));
    let Some(rows) = rows else {
        if let Some(object) = body.as_object() {
            for (key, value) in object {
                let text = value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string());
                println!("{key:<22} {text}");
            }
        }
        return;
    };
    let columns: Vec<String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let cell = |row: &Value, column: &str| match &row[column] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(columns.iter().map(|c| c.to_uppercase()).collect())
    );
    for row in rows {
        println!("{}", line(columns.iter().map(|c| cell(row, c)).collect()));
    }
}
