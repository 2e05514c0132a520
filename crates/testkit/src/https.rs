//! A small HTTPS server on `127.0.0.1` for tests of what the server
//! fetches (`jwks_uri`, `sector_identifier_uri`): it serves documents that
//! the test changes while it runs, each with its own status, content type
//! and `Cache-Control`, and counts the requests per path.
//!
//! Its certificate ([`HttpsServer::CERT`], a self-signed P-256 test
//! certificate for the DNS names `keys.test`, `sector.test`, `client.test`,
//! `mcp-client.test`, `apps.client.test` and `other.test`) protects
//! nothing; the Charter server under test trusts it through
//! `[fetch] root_certificates`, and reaches the names through
//! [`crate::Options::resolve`] mapping them to `127.0.0.1`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One document the server answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<String>,
    /// The `Location` header, if any (for redirects).
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Document {
    /// 200 with `value` as `application/json`.
    pub fn json(value: &Value) -> Self {
        Self::bytes("application/json", value.to_string())
    }

    /// 200 with `body` under `content_type`.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            content_type: Some(content_type.to_owned()),
            cache_control: None,
            location: None,
            body: body.into(),
        }
    }

    /// A redirect (`status` 3xx) to `location`, with an empty body.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self {
            status,
            content_type: None,
            cache_control: None,
            location: Some(location.to_owned()),
            body: Vec::new(),
        }
    }

    /// The same document answered with `status`.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same document with a `Cache-Control` header.
    pub fn cache_control(mut self, value: &str) -> Self {
        self.cache_control = Some(value.to_owned());
        self
    }
}

#[derive(Debug, Default)]
struct Shared {
    documents: Mutex<HashMap<String, Document>>,
    requests: Mutex<HashMap<String, usize>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running HTTPS server; paths without a document answer 404.
pub struct HttpsServer {
    port: u16,
    shared: Arc<Shared>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpsServer {
    /// The server's certificate (PEM), to name in `[fetch] root_certificates`.
    pub const CERT: &'static str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/cert.pem");
    /// Its private key (PEM).
    pub const KEY: &'static str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/key.pem");

    /// Starts a server on `127.0.0.1` with an OS-assigned port.
    pub async fn start() -> Self {
        // One process-wide crypto provider (the one the server installs
        // too); a second install is a harmless error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(Self::CERT, Self::KEY)
            .await
            .expect("the test certificate and key load");
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let handle = axum_server::Handle::new();
        let task = tokio::spawn(
            axum_server::from_tcp_rustls(listener, tls)
                .handle(handle.clone())
                .serve(app.into_make_service()),
        );
        Self {
            port,
            shared,
            handle,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://HOST:PORT/PATH` on this server, for a `host` the server
    /// under test resolves to `127.0.0.1`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    /// Serves `document` at `path` from now on.
    pub fn serve(&self, path: &str, document: Document) {
        lock(&self.shared.documents).insert(path.to_owned(), document);
    }

    /// Requests received for `path` so far.
    pub fn requests(&self, path: &str) -> usize {
        lock(&self.shared.requests).get(path).copied().unwrap_or(0)
    }

    /// Requests received for any path so far.
    pub fn total_requests(&self) -> usize {
        lock(&self.shared.requests).values().sum()
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.shutdown();
        let _ = self.task.await;
    }
}

async fn answer(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    *lock(&shared.requests).entry(path.clone()).or_default() += 1;
    let Some(document) = lock(&shared.documents).get(&path).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = StatusCode::from_u16(document.status).expect("a valid status code");
    let mut response = (status, document.body).into_response();
    let headers = response.headers_mut();
    // `Vec<u8>` answers are `application/octet-stream` unless told otherwise.
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in [
        (header::CONTENT_TYPE, document.content_type),
        (header::CACHE_CONTROL, document.cache_control),
        (header::LOCATION, document.location),
    ] {
        if let Some(value) = value {
            headers.insert(name, HeaderValue::from_str(&value).expect("a header value"));
        }
    }
    response
}
