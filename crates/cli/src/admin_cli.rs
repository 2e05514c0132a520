//! `charter org|iat|client|admin-token|user …`: the admin API from the
//! command line. Each command is one HTTP call to `/admin/v1/…`; `--json` prints the
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

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an end user; the password is read from standard input.
    ///
    /// The password is the first line of standard input, never an argument
    /// (arguments end up in shell history and process listings):
    /// `charter user create --username alice < file`. On a terminal it is
    /// prompted for without echo.
    Create {
        /// 1 to 64 characters of A-Z, a-z, 0-9 and . _ @ - (stored in lower case).
        #[arg(long)]
        username: String,
        /// The name to show, e.g. "Alice Smith".
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users by username.
    List {
        /// At most this many (default 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Disable a user: no sign-in, sessions end, their grants are revoked.
    Disable { id: String },
    /// Enable a disabled user again.
    Enable { id: String },
    /// A user's remembered consents, by client.
    Consents { id: String },
    /// Revoke a user's consent for a client and every grant it backs.
    RevokeConsent { id: String, client_id: String },
}

pub enum Request {
    Get(String),
    Post(String, Value),
    Delete(String),
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

/// The request for a `user` command; `create` reads the password first.
pub fn user_request(command: UserCommand) -> Result<Request, String> {
    Ok(match command {
        UserCommand::Create {
            username,
            name,
            email,
        } => {
            let password = read_password(&username)?;
            let mut body = json!({"username": username, "password": password});
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            if let Some(email) = email {
                body["email"] = json!(email);
            }
            Request::Post("/admin/v1/users".into(), body)
        }
        UserCommand::List { limit } => Request::Get(match limit {
            Some(limit) => format!("/admin/v1/users?limit={limit}"),
            None => "/admin/v1/users".into(),
        }),
        UserCommand::Disable { id } => Request::Post(
            format!("/admin/v1/users/{}/disable", segment(&id)),
            json!({}),
        ),
        UserCommand::Enable { id } => Request::Post(
            format!("/admin/v1/users/{}/enable", segment(&id)),
            json!({}),
        ),
        UserCommand::Consents { id } => {
            Request::Get(format!("/admin/v1/users/{}/consents", segment(&id)))
        }
        UserCommand::RevokeConsent { id, client_id } => Request::Delete(format!(
            "/admin/v1/users/{}/consents/{}",
            segment(&id),
            segment(&client_id)
        )),
    })
}

/// A path segment, percent-encoded: client ids may be URLs (CIMD).
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The password for `user create`: the first line of standard input
/// without its line ending. On a terminal it is prompted for on standard
/// error, with echo off where `stty` can turn it off.
fn read_password(username: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return first_line(stdin.lock());
    }
    eprint!("Password for {username}: ");
    let echo_off = NoEcho::new();
    let password = first_line(stdin.lock());
    drop(echo_off);
    eprintln!();
    password
}

/// The first line of `input` (at most 4 KiB), without `\n` or `\r\n`;
/// every other character, spaces included, belongs to the password.
fn first_line(input: impl std::io::BufRead) -> Result<String, String> {
    use std::io::BufRead;
    let mut line = String::new();
    input
        .take(4096)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Err(
            "no password: give it as the first line of standard input (never as an argument)"
                .into(),
        );
    }
    Ok(line.to_owned())
}

/// Terminal echo turned off until dropped (Unix `stty`; where it is
/// missing, the password is echoed as typed).
struct NoEcho(bool);

impl NoEcho {
    fn new() -> Self {
        NoEcho(stty("-echo"))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if self.0 {
            stty("echo");
        }
    }
}

fn stty(setting: &str) -> bool {
    std::process::Command::new("stty")
        .arg(setting)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
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
        Request::Delete(path) => client.delete(format!("{base}{path}")),
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
        "users",
        "consents",
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

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn the_password_is_the_first_line_without_its_ending() {
        let read = |input: &str| first_line(input.as_bytes());
        assert_eq!(read("correct horse\n").unwrap(), "correct horse");
        assert_eq!(
            read("correct horse\r\nsecond line\n").unwrap(),
            "correct horse"
        );
        assert_eq!(read(" spaces count ").unwrap(), " spaces count ");
        assert!(read("").unwrap_err().contains("standard input"));
        assert!(read("\n").is_err());
    }
}
