//! Starts a real Charter server for tests: in-process, on `127.0.0.1` with
//! an OS-assigned port, over a temporary data directory, with either the
//! SQLite backend or a private schema of the machine's PostgreSQL.
//!
//! Tests talk to it over HTTP only. PostgreSQL tests need a reachable
//! server (`CHARTER_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): without one they fail when
//! `CI=true` and otherwise print a SKIPPED line and pass.

use charter_config::RawConfig;
use charter_service::credentials::{self, Credential};
use charter_store::{InitialAccessToken, Store};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

pub mod browser;

/// base64url without padding (RFC 7515 §2), for tests that build JOSE objects.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    charter_service::now()
}

/// 128 random bits, base64url (for `jti` values and the like).
pub fn random() -> String {
    charter_service::credentials::random_id().expect("random")
}
pub mod https;

pub use charter_store::contract::join_all;
pub use reqwest;
pub use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to start a test server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Appended to `http://127.0.0.1:PORT` to form the issuer (e.g. `/t1`).
    pub issuer_path: String,
    /// Extra TOML appended to the generated configuration.
    pub extra_toml: String,
    /// Names the server's fetcher resolves, and to what: tests never look
    /// up an outside name (every name not listed fails to resolve).
    pub resolve: Vec<(String, Vec<std::net::IpAddr>)>,
}

impl Options {
    fn resolver(&self) -> Arc<dyn charter_fetch::Resolve> {
        let mut resolver = charter_fetch::StaticResolver::new();
        for (host, addrs) in &self.resolve {
            resolver = resolver.with(host, addrs);
        }
        Arc::new(resolver)
    }
}

pub fn postgres_url() -> String {
    std::env::var("CHARTER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Says plainly, past the test harness's output capture, that a test did not run.
fn announce_skip(reason: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
}

struct PgSchema {
    url: String,
    name: String,
}

/// A running server plus what a test needs to talk to it.
pub struct TestServer {
    pub backend: Backend,
    pub issuer: String,
    /// The bootstrap initial access token of organization `default`.
    pub iat: String,
    pub admin_token: String,
    pub http: reqwest::Client,
    server: Option<charter::Server>,
    data_dir: tempfile::TempDir,
    pg: Option<PgSchema>,
    port: u16,
    options: Options,
}

fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

impl TestServer {
    /// Starts a server, or returns `None` when PostgreSQL is required but
    /// unavailable outside CI (the skip is announced on stderr).
    pub async fn start(backend: Backend, options: Options) -> Option<Self> {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let url = postgres_url();
                let probe = tokio::time::timeout(
                    std::time::Duration::from_secs(3),
                    sqlx::PgPool::connect(&url),
                )
                .await;
                match probe {
                    Ok(Ok(pool)) => pool.close().await,
                    outcome => {
                        let why = match outcome {
                            Ok(Err(e)) => e.to_string(),
                            _ => "connection timed out".into(),
                        };
                        if std::env::var("CI").as_deref() == Ok("true") {
                            panic!("PostgreSQL at {url} is unreachable ({why}) and CI requires the PostgreSQL tests to run");
                        }
                        announce_skip(&format!("PostgreSQL integration test: PostgreSQL unreachable at {url} ({why}); set CHARTER_TEST_POSTGRES_URL or start PostgreSQL"));
                        return None;
                    }
                }
                let name = format!(
                    "charter_it_{}",
                    credentials::random_id()
                        .expect("random")
                        .to_lowercase()
                        .replace(['-', '_'], "")
                );
                Some(PgSchema { url, name })
            }
        };
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        let mut server = Self {
            backend,
            issuer: String::new(),
            iat: String::new(),
            admin_token: String::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            server: None,
            data_dir,
            pg,
            port: free_port(),
            options,
        };
        server.boot().await;
        let first = server
            .server
            .as_mut()
            .and_then(|s| s.bootstrap.take())
            .expect("first start bootstraps");
        server.iat = first.initial_access_token.expose().to_owned();
        server.admin_token = first.admin_token.expose().to_owned();
        Some(server)
    }

    fn config(&self) -> charter_config::Config {
        let issuer = format!("http://127.0.0.1:{}{}", self.port, self.options.issuer_path);
        let data_dir = self.data_dir.path().display().to_string();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nissuer = \"{issuer}\"\ndata_dir = {data_dir:?}\n{}",
            self.port, self.options.extra_toml
        );
        RawConfig::from_toml_str(&text, &PathBuf::from("testkit.toml"))
            .and_then(RawConfig::validate)
            .expect("test configuration is valid")
    }

    async fn boot(&mut self) {
        let mut config = self.config();
        let store: Option<Arc<dyn Store>> = match &self.pg {
            None => None,
            Some(pg) => {
                config.storage = charter_config::StorageConfig::Postgres {
                    url: pg.url.clone(),
                };
                Some(Arc::new(
                    charter_store_postgres::PostgresStore::open_with_schema(&pg.url, &pg.name)
                        .await
                        .expect("open PostgreSQL test schema"),
                ))
            }
        };
        let server = charter::start_with(config, store, self.options.resolver())
            .await
            .expect("server starts");
        self.issuer = server.issuer.to_string();
        self.server = Some(server);
    }

    /// A second server on the same database, data directory (so the same
    /// credential hash key) and issuer, listening on another port: a
    /// replica behind one load balancer. PostgreSQL only.
    pub async fn start_replica(&self) -> Replica {
        let pg = self
            .pg
            .as_ref()
            .expect("replicas share a PostgreSQL database");
        let port = free_port();
        let mut config = self.config();
        config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.storage = charter_config::StorageConfig::Postgres {
            url: pg.url.clone(),
        };
        let store: Arc<dyn Store> = Arc::new(
            charter_store_postgres::PostgresStore::open_with_schema(&pg.url, &pg.name)
                .await
                .expect("open PostgreSQL test schema"),
        );
        let server = charter::start_with(config, Some(store), self.options.resolver())
            .await
            .expect("replica starts");
        assert!(server.bootstrap.is_none(), "a replica must not bootstrap");
        Replica {
            base: format!("http://127.0.0.1:{port}{}", self.options.issuer_path),
            server,
        }
    }

    /// Stops the server and starts it again on the same data and port.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.boot().await;
        assert!(
            self.server.as_ref().is_some_and(|s| s.bootstrap.is_none()),
            "a restart must not bootstrap again"
        );
    }

    /// Stops the server and removes its PostgreSQL schema.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(pg) = &self.pg {
            if let Ok(pool) = sqlx::PgPool::connect(&pg.url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", pg.name))
                    .execute(&pool)
                    .await;
                pool.close().await;
            }
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.server.as_ref().expect("server running").store
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// A URL under the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A URL at the host root (for RFC 8414 well-known paths).
    pub fn root_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET `url`, expect 200, return the JSON body.
    pub async fn get_json(&self, url: &str) -> Value {
        let response = self.http.get(url).send().await.expect("GET request");
        assert_eq!(response.status(), 200, "GET {url}");
        response.json().await.expect("JSON body")
    }

    /// Mints an initial access token through the admin API.
    pub async fn mint_iat(&self, body: &Value) -> String {
        let response = self
            .http
            .post(self.url("/admin/v1/organizations/default/initial-access-tokens"))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .expect("admin request");
        let status = response.status();
        let answer: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 201, "minting an IAT failed: {answer}");
        answer["initial_access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// POST `body` to an admin API path with the bootstrap admin token;
    /// returns the status and the JSON body (`null` when there is none).
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET an admin API path with the bootstrap admin token; expects 200.
    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("admin request");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON body")
    }

    /// RFC 7592 read of a registered client with its own credentials.
    pub async fn read_client(&self, client: &Value) -> Value {
        self.http
            .get(
                client["registration_client_uri"]
                    .as_str()
                    .expect("registration_client_uri"),
            )
            .bearer_auth(
                client["registration_access_token"]
                    .as_str()
                    .expect("registration_access_token"),
            )
            .send()
            .await
            .expect("read request")
            .json()
            .await
            .expect("JSON body")
    }

    /// Runs one UPDATE statement (`$1`, `$2`, `$3` placeholders) on the
    /// server's database behind its back, as an attacker with database access
    /// or the passing of time would; returns the rows changed.
    pub async fn execute_sql(&self, sql: &str, a: &str, b: &str, c: i64) -> u64 {
        match &self.pg {
            Some(pg) => {
                let pool = sqlx::PgPool::connect(&pg.url).await.expect("connect");
                let mut conn = pool.acquire().await.expect("connection");
                sqlx::query(&format!("SET search_path TO \"{}\"", pg.name))
                    .execute(&mut *conn)
                    .await
                    .expect("schema");
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .bind(c)
                    .execute(&mut *conn)
                    .await
                    .expect("statement")
                    .rows_affected()
            }
            None => {
                let conn = rusqlite::Connection::open(self.data_dir.path().join("charter.db"))
                    .expect("open SQLite");
                conn.execute(&sql.replace('$', "?"), rusqlite::params![a, b, c])
                    .expect("statement") as u64
            }
        }
    }

    /// Edits the event text of audit entry `seq` behind the server's back.
    pub async fn tamper_with_audit_entry(&self, seq: i64, from: &str, to: &str) {
        let sql = "UPDATE audit_log SET event = replace(event, $1, $2) WHERE seq = $3";
        assert_eq!(self.execute_sql(sql, from, to, seq).await, 1);
    }

    /// Moves a client's registration time into the past.
    pub async fn backdate_client(&self, client_id: &str, seconds: i64) {
        let sql = "UPDATE clients SET issued_at = issued_at - $3 WHERE client_id = $1 AND $2 = $2";
        assert_eq!(self.execute_sql(sql, client_id, "", seconds).await, 1);
    }

    pub async fn client_count(&self) -> u64 {
        self.store().client_count().await.expect("count clients")
    }

    /// POST /register with `token` as bearer (if any) and a JSON body.
    pub async fn register_with(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(self.url("/register")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("registration request")
    }

    /// Registers with the bootstrap IAT and expects 201; returns the body.
    pub async fn register(&self, body: &Value) -> Value {
        let response = self.register_with(Some(&self.iat), body).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 201, "registration failed: {body}");
        body
    }

    /// Stores an initial access token for `default` directly, for states the
    /// API cannot produce on demand (expired, revoked).
    pub async fn insert_iat(&self, expires_at: Option<i64>, revoked: bool) -> String {
        let store = self.store();
        let org = store
            .organization_by_name("default")
            .await
            .expect("lookup")
            .expect("default org");
        let token = credentials::generate(Credential::InitialAccessToken).expect("random");
        let hasher = &self.server.as_ref().expect("running").hasher;
        store
            .insert_initial_access_token(
                InitialAccessToken {
                    id: format!("iat_{}", credentials::random_id().expect("random")),
                    organization_id: org.id,
                    token_hash: hasher.hash(Credential::InitialAccessToken, token.expose()),
                    created_at: charter_service::now(),
                    expires_at,
                    revoked,
                    profile: "default".into(),
                    max_uses: None,
                    uses: 0,
                    allowed_cidr: None,
                },
                charter_store::AuditEvent::new(charter_service::now(), "test", "iat.issue", "done"),
            )
            .await
            .expect("insert IAT");
        token.expose().to_owned()
    }
}

/// A replica started by [`TestServer::start_replica`].
pub struct Replica {
    /// Where the replica answers (its issuer is the primary's).
    pub base: String,
    server: charter::Server,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Runs `case` against a fresh server on `backend`, then stops it.
pub async fn run<F, Fut>(backend: Backend, options: Options, case: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: std::future::Future<Output = TestServer>,
{
    if let Some(server) = TestServer::start(backend, options).await {
        case(server).await.stop().await;
    }
}

/// Declares one test per backend for an `async fn(TestServer) -> TestServer`;
/// `options = EXPR;` first gives the server options other than the default.
#[macro_export]
macro_rules! on_both_backends {
    (options = $options:expr; $($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    $crate::run($crate::Backend::Sqlite, $options, super::$case).await;
                }
                #[tokio::test]
                async fn postgres() {
                    $crate::run($crate::Backend::Postgres, $options, super::$case).await;
                }
            }
        )+
    };
    ($($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    $crate::run($crate::Backend::Sqlite, Default::default(), super::$case).await;
                }
                #[tokio::test]
                async fn postgres() {
                    $crate::run($crate::Backend::Postgres, Default::default(), super::$case).await;
                }
            }
        )+
    };
}
