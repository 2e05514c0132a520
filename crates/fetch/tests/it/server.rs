//! A tiny HTTP/1.1 server on 127.0.0.1:0 that writes raw responses, counts
//! requests and concurrency, and a `Probe` listener that proves nobody
//! connected to it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` (otherwise the body ends at close).
    pub content_length: bool,
    /// Never answer; keep the connection open until the client gives up.
    pub hang: bool,
    /// Answer only once another request is in flight too (or every
    /// expected request has arrived): proves concurrency without sleeping.
    pub pair_up: Option<usize>,
    /// Then hold the answer this long: the window in which a fetcher that
    /// ignored its concurrency limit would send more requests.
    pub hold: Option<Duration>,
}

impl Reply {
    pub fn json(body: &str) -> Self {
        Self::new(200)
            .header("Content-Type", "application/json")
            .body(body.as_bytes())
    }

    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_length: true,
            hang: false,
            pair_up: None,
            hold: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }
}

type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// (in flight, total requests seen).
type Load = (usize, usize);

pub struct Server {
    pub addr: SocketAddr,
    load: watch::Sender<Load>,
    max_in_flight: Arc<Mutex<usize>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Answers every request with `reply`.
    pub async fn start(reply: Reply) -> Self {
        Self::start_with(move |_| reply.clone()).await
    }

    /// Answers each request with `handler(path)`.
    pub async fn start_with(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Handler = Arc::new(handler);
        let (load, _) = watch::channel((0, 0));
        let server = Self {
            addr,
            load,
            max_in_flight: Arc::default(),
            paths: Arc::default(),
        };
        let (load, max, paths) = (
            server.load.clone(),
            Arc::clone(&server.max_in_flight),
            Arc::clone(&server.paths),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, load, max, paths) = (
                    Arc::clone(&handler),
                    load.clone(),
                    Arc::clone(&max),
                    Arc::clone(&paths),
                );
                tokio::spawn(serve(stream, handler, load, max, paths));
            }
        });
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.load.borrow().1
    }

    pub fn max_in_flight(&self) -> usize {
        *self.max_in_flight.lock().unwrap()
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Handler,
    load: watch::Sender<Load>,
    max: Arc<Mutex<usize>>,
    paths: Arc<Mutex<Vec<String>>>,
) {
    let Some(path) = read_head(&mut stream).await else {
        return;
    };
    paths.lock().unwrap().push(path.clone());
    load.send_modify(|(in_flight, total)| {
        *in_flight += 1;
        *total += 1;
        let mut max = max.lock().unwrap();
        *max = (*max).max(*in_flight);
    });
    let reply = handler(&path);
    if let Some(expected) = reply.pair_up {
        let mut rx = load.subscribe();
        let paired = rx.wait_for(|(in_flight, total)| *in_flight >= 2 || *total >= expected);
        // A safety net only: the condition is met as soon as the fetcher
        // sends a second request.
        let _ = tokio::time::timeout(Duration::from_secs(10), paired).await;
    }
    if let Some(hold) = reply.hold {
        tokio::time::sleep(hold).await;
    }
    if reply.hang {
        // Hold the connection until the client closes it.
        let mut sink = [0u8; 64];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    } else {
        let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
        for (name, value) in &reply.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if reply.content_length {
            out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&reply.body);
        // The client may hang up early (e.g. on a too-large body).
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    }
    load.send_modify(|(in_flight, _)| *in_flight -= 1);
}

/// The request path, once the whole head has arrived.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace().nth(1).map(str::to_owned)
}

/// A listener that must never see a connection from the fetcher.
pub struct Probe {
    listener: TcpListener,
}

impl Probe {
    pub async fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// Whether anything connected before now. Connects to the probe itself
    /// and accepts: the accept queue is first in, first out, so if anything
    /// had connected before, its connection is accepted first. No waiting,
    /// no sleeping.
    pub async fn touched(&self) -> bool {
        let ours = TcpStream::connect(self.listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_, peer) = self.listener.accept().await.unwrap();
        peer != ours.local_addr().unwrap()
    }

    pub async fn assert_untouched(&self) {
        assert!(!self.touched().await, "the probe saw a connection");
    }
}
