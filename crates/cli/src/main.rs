//! The `charter` binary: `charter serve` runs the authorization server.
//! With no flags and no file it listens on 127.0.0.1:8080 with an embedded
//! SQLite database in ./charter-data.

mod admin_cli;

/// mimalloc instead of the glibc allocator: the token path allocates many
/// small short-lived buffers (headers, JSON, JWT parts), and glibc malloc
/// and free took about a tenth of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use charter_config::RawConfig;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "charter",
    version,
    about = "Governed client registration for non-human identities"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authorization server.
    Serve(ServeArgs),
    /// Validate a configuration file and print every problem.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Registration policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The tamper-evident audit log, read from the configured database.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Organizations (admin API).
    Org {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::OrgCommand,
    },
    /// Initial access tokens (admin API).
    Iat {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::IatCommand,
    },
    /// Clients: approve, reject, revoke, delete, rotate a secret, reports (admin API).
    Client {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::ClientCommand,
    },
    /// Admin tokens with roles (admin API).
    AdminToken {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::AdminTokenCommand,
    },
    /// End users of the built-in directory and their consents (admin API).
    User {
        #[command(flatten)]
        connection: admin_cli::Connection,
        #[command(subcommand)]
        command: admin_cli::UserCommand,
    },
}

fn block_on<F: std::future::Future<Output = ExitCode>>(future: F) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every hash link; names the first broken entry. Exits 1 if broken.
    Verify {
        #[arg(long, env = "CHARTER_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "CHARTER_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Write every entry as JSON lines to standard output.
    Export {
        #[arg(long, env = "CHARTER_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, env = "CHARTER_DATABASE_URL")]
        database_url: Option<String>,
    },
}

async fn audit_command(command: AuditCommand) -> ExitCode {
    let (config, database_url, verify) = match command {
        AuditCommand::Verify {
            config,
            database_url,
        } => (config, database_url, true),
        AuditCommand::Export {
            config,
            database_url,
        } => (config, database_url, false),
    };
    let mut raw = match &config {
        Some(path) => match RawConfig::load(path) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        },
        None => RawConfig::default(),
    };
    raw.storage.database_url = database_url.or(raw.storage.database_url.take());
    let config = match raw.validate() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let store = match charter::open_store(&config.storage).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("charter: cannot open storage: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = if verify {
        match charter_service::audit::verify(store.as_ref()).await {
            Ok(charter_service::audit::Verification::Intact { entries }) => {
                println!("audit log intact: {entries} entries");
                ExitCode::SUCCESS
            }
            Ok(charter_service::audit::Verification::Broken { seq, reason }) => {
                println!("audit log BROKEN at entry {seq}: {reason}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("charter: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        let mut after = 0;
        loop {
            match store.audit_entries(after, 1000).await {
                Ok(page) if page.is_empty() => break ExitCode::SUCCESS,
                Ok(page) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    // A closed pipe (`| head`) ends the export quietly.
                    if page.iter().any(|r| {
                        writeln!(out, "{}", charter_service::audit::entry_json(r)).is_err()
                    }) {
                        break ExitCode::SUCCESS;
                    }
                    after = page.last().map_or(after, |r| r.seq);
                }
                Err(e) => {
                    eprintln!("charter: {e}");
                    break ExitCode::FAILURE;
                }
            }
        }
    };
    store.close().await;
    code
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (its top level is the [policy] table) and
    /// print every problem by key.
    Lint { file: PathBuf },
    /// Dry-run the registration policy for a request body: prints the
    /// decision (admit, pending or refuse) and its reasons, creates nothing.
    /// Exits 0 when admitted or pending, 1 when refused.
    Check {
        /// The profile to decide under (default: the policy's default profile).
        #[arg(long)]
        profile: Option<String>,
        /// Configuration file holding the [policy] table.
        #[arg(long, env = "CHARTER_CONFIG")]
        config: Option<PathBuf>,
        /// A JSON file with the registration request body.
        request: PathBuf,
    },
}

fn policy_command(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Lint { file } => {
            let defaults = (
                std::time::Duration::from_secs(365 * 86_400),
                std::time::Duration::from_secs(90 * 86_400),
            );
            match charter_policy::load_policy_file(&file, defaults) {
                Ok(policy) => {
                    println!(
                        "{}: valid (version {:?}, profiles: {})",
                        file.display(),
                        policy.version,
                        policy
                            .profiles
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    eprintln!("invalid policy:\n  - {}", problems.join("\n  - "));
                    ExitCode::from(2)
                }
            }
        }
        PolicyCommand::Check {
            profile,
            config,
            request,
        } => {
            let raw = match &config {
                Some(path) => RawConfig::load(path),
                None => Ok(RawConfig::default()),
            };
            let config = match raw.and_then(RawConfig::validate) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let body = match std::fs::read_to_string(&request)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
                        .map_err(|e| e.to_string())
                }) {
                Ok(body) => body,
                Err(e) => {
                    eprintln!("{}: not a JSON object: {e}", request.display());
                    return ExitCode::from(2);
                }
            };
            let profile = profile.unwrap_or_else(|| config.policy.default_profile.clone());
            let decision =
                charter_service::policy_check(&config.policy, &profile, &body, Default::default());
            println!(
                "{}",
                serde_json::to_string_pretty(&decision).unwrap_or_default()
            );
            if decision["decision"] == "refuse" {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "CHARTER_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (server.listen).
    #[arg(long, env = "CHARTER_LISTEN")]
    listen: Option<String>,
    /// Issuer identifier (server.issuer); https unless the host is loopback.
    #[arg(long, env = "CHARTER_ISSUER")]
    issuer: Option<String>,
    /// sqlite:PATH or postgres://USER@HOST/DB (storage.database_url).
    #[arg(long, env = "CHARTER_DATABASE_URL")]
    database_url: Option<String>,
    /// Data directory (server.data_dir).
    #[arg(long, env = "CHARTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PEM certificate chain for native TLS (server.tls.cert).
    #[arg(long, env = "CHARTER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for native TLS (server.tls.key).
    #[arg(long, env = "CHARTER_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

fn load(args: ServeArgs) -> Result<charter_config::Config, charter_config::Error> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::load(path)?,
        None => RawConfig::default(),
    };
    let server = &mut raw.server;
    server.listen = args.listen.or(server.listen.take());
    server.issuer = args.issuer.or(server.issuer.take());
    server.data_dir = args.data_dir.or(server.data_dir.take());
    server.tls.cert = args.tls_cert.or(server.tls.cert.take());
    server.tls.key = args.tls_key.or(server.tls.key.take());
    raw.storage.database_url = args.database_url.or(raw.storage.database_url.take());
    if let Ok(key) = std::env::var("CHARTER_HASH_KEY") {
        raw.secrets.hash_key = Some(key);
    }
    raw.validate()
}

fn main() -> ExitCode {
    // Log lines are written by a background thread in batches: one
    // unbuffered write(2) per request line would cost a quarter of the
    // registration throughput. Not lossy: a full buffer applies backpressure
    // rather than dropping lifecycle events. The guard flushes on exit.
    let (log_writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHARTER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .with_writer(log_writer)
        .init();
    match Cli::parse().command {
        Command::Policy(command) => policy_command(command),
        Command::Audit(command) => block_on(audit_command(command)),
        Command::Org {
            connection,
            command,
        } => block_on(admin_cli::call(connection, admin_cli::org_request(command))),
        Command::Iat {
            connection,
            command,
        } => block_on(admin_cli::call(connection, admin_cli::iat_request(command))),
        Command::Client {
            connection,
            command,
        } => block_on(admin_cli::call(
            connection,
            admin_cli::client_request(command),
        )),
        Command::AdminToken {
            connection,
            command,
        } => block_on(admin_cli::call(
            connection,
            admin_cli::admin_token_request(command),
        )),
        Command::User {
            connection,
            command,
        } => match admin_cli::user_request(command) {
            Ok(request) => block_on(admin_cli::call(connection, request)),
            Err(e) => {
                eprintln!("charter: {e}");
                ExitCode::from(2)
            }
        },
        Command::CheckConfig { file } => match RawConfig::load(&file).and_then(RawConfig::validate)
        {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => {
            let config = match load(args) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: charter_config::Config) -> ExitCode {
    let server = match charter::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("charter: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if server.issuer.as_str().starts_with("https") {
        "https"
    } else {
        "http"
    };
    println!("Listening on {scheme}://{}", server.local_addr);
    println!("Issuer: {}", server.issuer);
    println!("Durability: {}", server.durability());
    if let Some(first) = &server.bootstrap {
        // Shown exactly once, at first start; only hashes are stored.
        println!("First start: created organization \"default\".");
        println!(
            "Admin token (shown once; also saved to {}): {}",
            server.admin_token_file.display(),
            first.admin_token.expose()
        );
        println!(
            "Initial access token (organization \"default\"): {}",
            first.initial_access_token.expose()
        );
        println!(
            "  (expires at {} Unix time; mint more with the admin API)",
            first.initial_access_token_expires_at
        );
    }
    tokio::select! {
        result = async { tokio::signal::ctrl_c().await } => {
            if let Err(e) = result {
                eprintln!("charter: cannot listen for shutdown signals: {e}");
            }
            tracing::info!("shutting down");
            server.stop().await;
            ExitCode::SUCCESS
        }
    }
}
