//! Assembling and running the server: data directory, hash key, storage
//! backend, signing keys, first-start bootstrap, listener and TLS.
//!
//! `main.rs` parses the command line into a [`charter_config::Config`] and
//! calls [`start`]; the test kit calls [`start`] directly, so tests run the
//! very code path the binary runs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use charter_config::{Config, Issuer, StorageConfig};
use charter_http::{router, AppState};
use charter_service::{
    bootstrap, BootstrapOutput, Hasher, KeyRing, Registrar, TokenService, UsageRecorder,
};
use charter_store::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] charter_store::Error),
    #[error("{0}")]
    Service(#[from] charter_service::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("issuer: {0}")]
    Issuer(String),
    #[error("fetch: {0}")]
    Fetch(#[from] charter_fetch::FetchError),
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub issuer: Issuer,
    pub store: Arc<dyn Store>,
    pub hasher: Hasher,
    /// Credentials created at first start; `None` on later starts.
    pub bootstrap: Option<BootstrapOutput>,
    pub admin_token_file: std::path::PathBuf,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    usage: Arc<UsageRecorder>,
}

impl Server {
    /// How writes are made durable, for operators and benchmarks.
    pub fn durability(&self) -> String {
        self.store.durability()
    }

    /// Stops accepting connections, finishes in-flight requests and closes storage.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        self.sweeper.abort();
        if let Err(e) = self.usage.flush(self.store.as_ref()).await {
            tracing::warn!(error = %e, "final last_used_at flush failed");
        }
        self.store.close().await;
    }

    /// Runs until the server stops by itself (it normally does not).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        self.sweeper.abort();
        if let Err(e) = self.usage.flush(self.store.as_ref()).await {
            tracing::warn!(error = %e, "final last_used_at flush failed");
        }
        self.store.close().await;
        result
    }
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Writes `contents` to a new file readable by the owner only.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The credential hash key: configured, or kept in the data directory.
fn hash_key(config: &Config) -> Result<Vec<u8>, StartError> {
    if let Some(key) = &config.secrets.hash_key {
        return Ok(key.clone());
    }
    let path = config.server.data_dir.join("hash.key");
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = charter_service::credentials::random_bytes::<32>()?;
            write_private_file(&path, &URL_SAFE_NO_PAD.encode(key)).map_err(err)?;
            Ok(key.to_vec())
        }
        Err(e) => Err(err(e)),
    }
}

/// Opens the configured storage backend (applying migrations).
pub async fn open_store(storage: &StorageConfig) -> Result<Arc<dyn Store>, StartError> {
    Ok(match storage {
        StorageConfig::Sqlite { url } => {
            Arc::new(charter_store_sqlite::SqliteStore::open(url).await?)
        }
        StorageConfig::Postgres { url } => {
            Arc::new(charter_store_postgres::PostgresStore::open(url).await?)
        }
    })
}

/// Starts a server with `config`, using `store` if given (tests pass one
/// bound to a private PostgreSQL schema) or the configured backend.
pub async fn start_with_store(
    config: Config,
    store: Option<Arc<dyn Store>>,
) -> Result<Server, StartError> {
    start_with(config, store, Arc::new(charter_fetch::SystemResolver)).await
}

/// [`start_with_store`] with the name resolver the fetcher uses: tests pass
/// a static one, so that no outside name is ever looked up.
pub async fn start_with(
    config: Config,
    store: Option<Arc<dyn Store>>,
    resolver: Arc<dyn charter_fetch::Resolve>,
) -> Result<Server, StartError> {
    create_private_dir(&config.server.data_dir)?;
    // The one outbound HTTP client of the server.
    let fetcher = charter_fetch::Fetcher::new(config.fetch.clone(), resolver)?;
    let hasher = Hasher::new(&hash_key(&config)?);
    let store = match store {
        Some(store) => store,
        None => open_store(&config.storage).await?,
    };
    if matches!(config.storage, StorageConfig::Postgres { .. }) && config.secrets.hash_key.is_none()
    {
        tracing::warn!("secrets.hash_key is not set: replicas sharing this database must share one key (CHARTER_HASH_KEY)");
    }

    let listener =
        std::net::TcpListener::bind(config.server.listen).map_err(|source| StartError::Listen {
            addr: config.server.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Listen {
            addr: config.server.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.server.listen,
        source,
    })?;
    let issuer = match &config.server.issuer {
        Some(issuer) => issuer.clone(),
        None => {
            let scheme = if config.server.tls.is_some() {
                "https"
            } else {
                "http"
            };
            Issuer::parse(&format!("{scheme}://{local_addr}")).map_err(StartError::Issuer)?
        }
    };

    let keys = Arc::new(KeyRing::load(store.as_ref(), config.tokens.clone()).await?);
    let bootstrap = bootstrap(store.as_ref(), &hasher, &config.policy.default_profile).await?;
    let admin_token_file = config.server.data_dir.join("admin-token");
    if let Some(first) = &bootstrap {
        write_private_file(
            &admin_token_file,
            &format!("{}\n", first.admin_token.expose()),
        )
        .map_err(|source| StartError::DataDir {
            path: admin_token_file.display().to_string(),
            source,
        })?;
    }

    let policy = Arc::new(config.policy.clone());
    let registrar = Registrar::new(
        store.clone(),
        hasher.clone(),
        issuer.clone(),
        config.registration.clone(),
        policy.clone(),
    )
    .with_lifecycle(config.lifecycle.clone())
    .with_fetcher(fetcher.clone())
    .with_software_statements(
        config.software_statements.clone(),
        Arc::new(charter_service::ConfiguredKeys::new(fetcher.clone())),
    )
    .with_workload_identity(config.workload_identity.clone());
    let usage = Arc::new(UsageRecorder::default());
    // One directory for the whole server: the admin API and sign-in share
    // its limit on concurrent password hashing.
    let users = Arc::new(charter_service::LocalUsers::new(store.clone()));
    let directory: Arc<dyn charter_service::UserDirectory> = users.clone();
    let tokens = TokenService::new(
        store.clone(),
        hasher.clone(),
        issuer.clone(),
        policy.clone(),
        keys.clone(),
        config.tokens.clone(),
        config.lifecycle.clone(),
        usage.clone(),
        directory.clone(),
        config.dpop.clone(),
    )
    .with_fetcher(fetcher.clone())
    .with_workload_identity(config.workload_identity.clone());
    let metadata_documents = config.client_id_metadata_documents.enabled;
    let documents = Arc::new(charter_service::MetadataDocuments::new(
        store.clone(),
        hasher.clone(),
        policy.clone(),
        fetcher,
        config.client_id_metadata_documents.clone(),
    ));
    let tokens = tokens.with_documents(documents.clone());
    let authorizer = charter_service::Authorizer::new(
        store.clone(),
        hasher.clone(),
        issuer.clone(),
        policy,
        directory,
        config.tokens.clone(),
        config.login.clone(),
    )
    .with_documents(documents);
    registrar.ensure_quarantine_organization().await?;
    for name in config
        .client_id_metadata_documents
        .organizations_to_create()
    {
        registrar.ensure_organization(&name).await?;
    }
    let anonymous_per_minute = config
        .registration
        .anonymous
        .as_ref()
        .map(|a| a.registrations_per_minute_per_source);
    let state = Arc::new(AppState::new(charter_http::Parts {
        registrar,
        tokens,
        keys,
        usage: usage.clone(),
        users: users.clone(),
        authorizer,
        store: store.clone(),
        issuer: issuer.clone(),
        limits: config.limits,
        anonymous_per_minute,
        statements_per_minute: config.software_statements.enabled.then_some(
            config
                .software_statements
                .registrations_per_minute_per_source,
        ),
        metadata_documents,
    }));
    let sweeper = charter_http::spawn_background(state.clone());
    let app = router(state);
    let (shutdown, on_shutdown) = oneshot::channel::<()>();

    let task = match &config.server.tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
                StartError::Listen {
                    addr: local_addr,
                    source,
                }
            })?;
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async {
                    let _ = on_shutdown.await;
                })
                .await
            })
        }
        Some(tls) => {
            // One process-wide crypto provider; a second install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls_config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                    .await
                    .map_err(|e| {
                        StartError::Tls(format!(
                            "{} / {}: {e}",
                            tls.cert.display(),
                            tls.key.display()
                        ))
                    })?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                let _ = on_shutdown.await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            tokio::spawn(async move {
                axum_server::from_tcp_rustls(listener, tls_config)
                    .handle(handle)
                    .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
            })
        }
    };

    Ok(Server {
        local_addr,
        issuer,
        store,
        hasher,
        bootstrap,
        admin_token_file,
        shutdown,
        task,
        sweeper,
        usage,
    })
}

/// Starts a server with the configured storage backend.
pub async fn start(config: Config) -> Result<Server, StartError> {
    start_with_store(config, None).await
}
