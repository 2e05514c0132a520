//! `charter-bench`: a bounded load test of Charter's hot endpoints: dynamic
//! client registration (RFC 7591, `POST /register`), the token endpoint
//! (RFC 6749 §4.4 `client_credentials` with `client_secret_basic`) and
//! token introspection (RFC 7662).
//!
//! It spawns a private `charter serve` on `127.0.0.1:0` with a throwaway data
//! directory, reads the listening port, the initial access token and the
//! durability mode from the server's stdout, and finds the endpoints through
//! OpenID Connect discovery. Then, phase by phase and for each requested
//! concurrency level, it drives C keep-alive HTTP/1.1 connections as fast as
//! the server answers (after a short warm-up):
//!
//! * `register`: registrations with the initial access token;
//! * `token`: `client_credentials` requests spread over a handful of
//!   clients registered for the purpose, each authenticating with HTTP Basic;
//! * `introspect`: introspection of access tokens obtained beforehand, each
//!   by the client that owns it.
//!
//! It reports successes per second, p50/p99/max latency, error counts and
//! the server's peak resident memory (`VmHWM`), and, around every phase
//! level, what the server committed to its SQLite database (see [`disk`]):
//! the token path must not write per request. Every phase is bounded in time
//! and in request count, and all traffic stays on loopback: nothing ever
//! connects anywhere but 127.0.0.1.

mod disk;

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

use disk::DiskProbe;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time an in-flight request may take after a phase's deadline.
const GRACE: Duration = Duration::from_secs(5);
/// Time limit of one set-up request (discovery, registering the bench's
/// clients, fetching the tokens to introspect).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The concurrency level `--check` judges.
const CHECK_CONCURRENCY: usize = 64;
const CHECK_MIN_REGISTRATION_RATE: f64 = 5000.0;
const CHECK_MAX_REGISTRATION_P99_MS: f64 = 25.0;
const CHECK_MAX_RSS_MIB: f64 = 100.0;
/// The issue's floor for `client_credentials` tokens at concurrency 64.
const CHECK_MIN_TOKEN_RATE: f64 = 15_000.0;
const CHECK_MAX_TOKEN_P99_MS: f64 = 10.0;
/// The issue's floor for introspections at concurrency 64.
const CHECK_MIN_INTROSPECTION_RATE: f64 = 15_000.0;
const CHECK_MAX_INTROSPECTION_P99_MS: f64 = 10.0;
/// Timer-driven commits the server may make while the token path is under
/// load: the batched `last_used_at` flush (default
/// `lifecycle.last_used_flush_interval`) and the lifecycle sweep. Anything
/// beyond one commit per period (plus one each) is a write on the token path.
const LAST_USED_FLUSH_PERIOD: Duration = Duration::from_secs(10);
const SWEEP_PERIOD: Duration = Duration::from_secs(60);
/// Longer than the server's WAL checkpoint interval (250 ms).
const CHECKPOINT_SETTLE: Duration = Duration::from_millis(750);
/// The `client_credentials` request body of the token phase.
const TOKEN_REQUEST: &str = "grant_type=client_credentials&scope=read";
const FORM: &str = "application/x-www-form-urlencoded";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PhaseKind {
    /// `POST /register` with the initial access token.
    Register,
    /// `POST /token`, `client_credentials`, `client_secret_basic`.
    Token,
    /// `POST /introspect` of pre-issued tokens by their owners.
    Introspect,
}

/// Load-test Charter (registration, client_credentials tokens, introspection)
/// against a private, loopback-only server.
#[derive(Parser, Debug)]
#[command(name = "charter-bench", version)]
struct Args {
    /// Path to the `charter` binary (default: next to this executable).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Phases to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "register,token,introspect"
    )]
    phases: Vec<PhaseKind>,
    /// Comma-separated concurrency levels of the registration phase (one connection per worker).
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    concurrency: Vec<usize>,
    /// Comma-separated concurrency levels of the token phase.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    token_concurrency: Vec<usize>,
    /// Comma-separated concurrency levels of the introspection phase.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    introspect_concurrency: Vec<usize>,
    /// Clients registered (client_credentials, client_secret_basic, scope
    /// "read") for the token and introspection phases; requests are spread
    /// over them round-robin.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Access tokens obtained before the introspection phase (spread over
    /// the clients); the phase introspects them round-robin, each with the
    /// client that owns it.
    #[arg(long, default_value_t = 1024)]
    tokens: usize,
    /// Warm-up seconds per level (not measured).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Measured seconds per level (upper bound).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Upper bound on requests issued per phase level (warm-up and measurement each).
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Forwarded to the server as `--database-url URL`.
    #[arg(long)]
    database_url: Option<String>,
    /// Extra argument passed through to `charter serve` (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Exit non-zero unless, at concurrency 64 in the phases run: registration reaches 5000/s
    /// with p99 < 25 ms; tokens and introspections reach the --check-*
    /// floors without errors; the token path commits nothing per request;
    /// and the server's peak RSS stays < 100 MiB.
    #[arg(long)]
    check: bool,
    /// --check floor: tokens per second at concurrency 64.
    #[arg(long, default_value_t = CHECK_MIN_TOKEN_RATE)]
    check_min_token_rate: f64,
    /// --check ceiling: token p99 latency (ms) at concurrency 64.
    #[arg(long, default_value_t = CHECK_MAX_TOKEN_P99_MS)]
    check_max_token_p99_ms: f64,
    /// --check floor: introspections per second at concurrency 64.
    #[arg(long, default_value_t = CHECK_MIN_INTROSPECTION_RATE)]
    check_min_introspection_rate: f64,
    /// --check ceiling: introspection p99 latency (ms) at concurrency 64.
    #[arg(long, default_value_t = CHECK_MAX_INTROSPECTION_P99_MS)]
    check_max_introspection_p99_ms: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to build the tokio runtime");
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("charter-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A running `charter serve` child; killed on drop, data dir removed afterwards.
struct Server {
    child: Child,
    pid: u32,
    port: u16,
    token: String,
    durability: String,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn shutdown(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Peak resident set size of the server so far, in kB.
    fn peak_rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// CPU time the server has used so far (all threads, user and system).
    fn cpu(&self) -> Option<Duration> {
        cpu_time(&self.pid.to_string())
    }

    /// The SQLite database the server writes to, when it uses SQLite.
    fn disk_probe(&self, database_url: Option<&str>) -> Option<DiskProbe> {
        match database_url {
            None => Some(DiskProbe::new(
                self.data_dir.join("charter.db"),
                Some(self.data_dir.clone()),
            )),
            Some(url) => url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .filter(|p| !p.is_empty())
                .map(|p| DiskProbe::new(PathBuf::from(p), Some(self.data_dir.clone()))),
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    for (flag, levels) in [
        ("--concurrency", &args.concurrency),
        ("--token-concurrency", &args.token_concurrency),
        ("--introspect-concurrency", &args.introspect_concurrency),
    ] {
        if levels.is_empty() || levels.contains(&0) {
            return Err(format!("{flag} needs one or more positive integers"));
        }
    }
    if args.clients == 0 || args.tokens == 0 {
        return Err("--clients and --tokens must be positive".into());
    }
    let started = Instant::now();
    let server = start_server(&args).await?;
    let probe = server.disk_probe(args.database_url.as_deref());
    let outcome = tokio::select! {
        r = bench(&args, &server, probe.as_ref()) => r,
        Ok(()) = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    let durability = server.durability.clone();
    server.shutdown().await;
    let (report, peak_kb) = outcome?;

    let peak_mib = peak_kb.map(|kb| kb as f64 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let total = started.elapsed().as_secs_f64();
    println!("durability: {durability}");
    match peak_mib {
        Some(m) => println!("server peak RSS: {m:.1} MiB"),
        None => println!("server peak RSS: unavailable"),
    }
    let token_path = report.token_path.as_ref();
    match (&probe, token_path) {
        (None, _) => println!("token path disk writes: not measured (not the SQLite backend)"),
        (Some(_), None) => println!("token path disk writes: no token or introspection phase"),
        (Some(_), Some(w)) => println!("token path disk writes: {}", w.describe()),
    }
    println!("total duration: {total:.2} s, cores: {cores}");
    let levels = |levels: &[Level], key: &str| -> Vec<serde_json::Value> {
        levels.iter().map(|l| l.to_json(key)).collect()
    };
    let json = serde_json::json!({
        "results": levels(&report.registrations, "registrations_per_sec"),
        "tokens": levels(&report.tokens, "tokens_per_sec"),
        "introspections": levels(&report.introspections, "introspections_per_sec"),
        "token_path_disk_writes": token_path.map(|w| w.to_json()),
        "peak_rss_mib": peak_mib,
        "durability": durability,
        "total_secs": total,
        "cores": cores,
    });
    println!("{json}");
    if args.check {
        return Ok(check(&args, &report, probe.is_some(), peak_mib));
    }
    Ok(true)
}

async fn start_server(args: &Args) -> Result<Server, String> {
    let bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate own executable: {e}"))?
            .with_file_name("charter"),
    };
    if !bin.is_file() {
        return Err(format!(
            "server binary {} not found (build it or pass --server PATH)",
            bin.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create temp dir: {e}"))?;
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("server-stderr.log");
    std::fs::create_dir(&data_dir).map_err(|e| format!("cannot create data dir: {e}"))?;
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create log: {e}"))?;

    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data_dir);
    if let Some(url) = &args.database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(&args.server_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id().ok_or("server exited immediately")?;
    let stdout = child.stdout.take().ok_or("server stdout not captured")?;

    match tokio::time::timeout(STARTUP_TIMEOUT, read_banner(stdout)).await {
        Ok(Ok((port, token, durability))) => Ok(Server {
            child,
            pid,
            port,
            token,
            durability,
            data_dir,
            _dir: dir,
        }),
        failure => {
            let why = match failure {
                Ok(Err(e)) => e,
                _ => format!(
                    "timed out after {}s waiting for startup lines",
                    STARTUP_TIMEOUT.as_secs()
                ),
            };
            let _ = child.start_kill();
            let _ = child.wait().await;
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            Err(format!("{why}\n--- server stderr (tail) ---\n{tail}"))
        }
    }
}

/// Reads stdout until port, token and durability are known, then keeps
/// draining it in the background so the pipe never fills.
async fn read_banner(stdout: ChildStdout) -> Result<(u16, String, String), String> {
    let mut lines = BufReader::new(stdout).lines();
    let (mut port, mut token, mut durability) = (None, None, None);
    while port.is_none() || token.is_none() || durability.is_none() {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => return Err("server exited (stdout closed) before it was ready".into()),
            Err(e) => return Err(format!("reading server stdout: {e}")),
        };
        if let Some(rest) = after(&line, "Listening on http://") {
            let authority = rest.split(['/', ' ']).next().unwrap_or_default();
            let p = authority
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok());
            port = Some(p.ok_or_else(|| format!("cannot parse port from {line:?}"))?);
        } else if let Some(rest) = after(&line, "Initial access token (organization \"default\"): ")
        {
            token = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(rest) = after(&line, "Durability: ") {
            durability = Some(rest.trim().to_string());
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match (port, token, durability) {
        (Some(p), Some(t), Some(d)) => Ok((p, t, d)),
        _ => Err("incomplete startup banner".into()),
    }
}

fn after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.find(prefix).map(|i| &line[i + prefix.len()..])
}

/// `USER_HZ`, the unit of `/proc/PID/stat` times: 100 on every Linux ABI
/// this runs on.
const USER_HZ: u64 = 100;

/// User plus system CPU time of process `pid` (or `self`), all threads.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command name start with field 3 (state);
    // utime and stime are fields 14 and 15.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Where requests go: always 127.0.0.1, whatever the issuer says.
struct Target {
    port: u16,
    host: HeaderValue,
}

/// A client registered for the token phases, with its ready-made
/// `Authorization: Basic` header (RFC 6749 §2.3.1).
struct BenchClient {
    basic: HeaderValue,
}

/// What the workers of one phase send, and what counts as success.
enum Workload {
    Register {
        path: String,
        auth: HeaderValue,
    },
    Token {
        path: String,
        clients: Arc<Vec<BenchClient>>,
    },
    /// Pre-issued tokens as ready `token=...` bodies, with their owner's index.
    Introspect {
        path: String,
        clients: Arc<Vec<BenchClient>>,
        tokens: Vec<(usize, Bytes)>,
    },
}

impl Workload {
    fn expected_status(&self) -> StatusCode {
        match self {
            Workload::Register { .. } => StatusCode::CREATED,
            Workload::Token { .. } | Workload::Introspect { .. } => StatusCode::OK,
        }
    }

    fn request(&self, t: &Target, n: u64) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let post = |path: &str, content_type: &'static str, auth: &HeaderValue| {
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(HOST, t.host.clone())
                .header(CONTENT_TYPE, content_type)
                .header(AUTHORIZATION, auth.clone())
        };
        match self {
            Workload::Register { path, auth } => {
                post(path, "application/json", auth).body(Full::new(registration_body(n)))
            }
            Workload::Token { path, clients } => {
                let client = &clients[(n % clients.len() as u64) as usize];
                post(path, FORM, &client.basic)
                    .body(Full::new(Bytes::from_static(TOKEN_REQUEST.as_bytes())))
            }
            Workload::Introspect {
                path,
                clients,
                tokens,
            } => {
                let (owner, body) = &tokens[(n % tokens.len() as u64) as usize];
                post(path, FORM, &clients[*owner].basic).body(Full::new(body.clone()))
            }
        }
    }

    /// Whether a response with the expected status carries what it must.
    fn body_ok(&self, body: &[u8]) -> bool {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        match self {
            Workload::Register { .. } => v.get("client_id").is_some_and(|id| id.is_string()),
            Workload::Token { .. } => v
                .get("access_token")
                .and_then(|t| t.as_str())
                .is_some_and(|t| !t.is_empty()),
            Workload::Introspect { .. } => v.get("active") == Some(&serde_json::Value::Bool(true)),
        }
    }
}

fn registration_body(n: u64) -> Bytes {
    Bytes::from(if n & 1 == 0 {
        format!(
            r#"{{"client_name":"bench-{n}","redirect_uris":["https://app.example.com/cb"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"client_secret_basic"}}"#
        )
    } else {
        format!(
            r#"{{"client_name":"bench-{n}","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}}"#
        )
    })
}

/// One measured concurrency level.
struct Level {
    concurrency: usize,
    rate: f64,
    ok: u64,
    errors: u64,
    p50: f64,
    p99: f64,
    max: f64,
    secs: f64,
    rss_mib: Option<f64>,
    /// CPU used during the measurement, in cores (CPU seconds per second).
    server_cores: Option<f64>,
    bench_cores: Option<f64>,
    disk: Option<DiskWrites>,
}

impl Level {
    fn to_json(&self, rate_key: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "concurrency": self.concurrency, "successes": self.ok, "errors": self.errors,
            "p50_ms": self.p50, "p99_ms": self.p99, "max_ms": self.max,
            "measured_secs": self.secs, "peak_rss_mib": self.rss_mib,
            "server_cpu_cores": self.server_cores, "load_generator_cpu_cores": self.bench_cores,
            "disk_writes": self.disk.as_ref().map(DiskWrites::to_json),
        });
        v[rate_key] = serde_json::json!(self.rate);
        v
    }
}

/// What the server committed to disk around one level (warm-up included).
struct DiskWrites {
    delta: disk::Delta,
    requests: u64,
    window_secs: f64,
}

impl DiskWrites {
    /// Commits the server's timers may make in the window (see
    /// [`LAST_USED_FLUSH_PERIOD`]).
    fn allowed(&self) -> u64 {
        let per = |period: Duration| (self.window_secs / period.as_secs_f64()).floor() as u64 + 1;
        per(LAST_USED_FLUSH_PERIOD) + per(SWEEP_PERIOD)
    }

    fn per_request_free(&self) -> bool {
        self.delta
            .transactions
            .is_some_and(|n| u64::from(n) <= self.allowed())
            && self.delta.other_files_changed.is_empty()
    }

    fn describe(&self) -> String {
        let verdict = match self.delta.transactions {
            None => "cannot tell".to_string(),
            Some(_) if self.per_request_free() => format!(
                "no per-request writes (at most {} timer-driven commits expected in {:.1} s: last_used_at flush every {} s, sweep every {} s)",
                self.allowed(),
                self.window_secs,
                LAST_USED_FLUSH_PERIOD.as_secs(),
                SWEEP_PERIOD.as_secs()
            ),
            Some(_) => format!(
                "WRITES ON THE REQUEST PATH (more than the {} timer-driven commits expected in {:.1} s)",
                self.allowed(),
                self.window_secs
            ),
        };
        format!("{} => {verdict}", self.delta.describe(self.requests))
    }

    fn to_json(&self) -> serde_json::Value {
        let mut v = self.delta.to_json(self.requests);
        v["window_secs"] = serde_json::json!(self.window_secs);
        v["timer_commits_allowed"] = serde_json::json!(self.allowed());
        v["per_request_writes"] = serde_json::json!(!self.per_request_free());
        v
    }
}

#[derive(Default)]
struct Report {
    registrations: Vec<Level>,
    tokens: Vec<Level>,
    introspections: Vec<Level>,
    /// Around every token and introspection level, set-up included.
    token_path: Option<DiskWrites>,
}

/// Drives the phases and keeps what they share.
struct Runner<'a> {
    args: &'a Args,
    server: &'a Server,
    probe: Option<&'a DiskProbe>,
    target: Arc<Target>,
    seq: Arc<AtomicU64>,
    peak_kb: Option<u64>,
    first_error_shown: bool,
}

impl Runner<'_> {
    /// Warm-up, then measurement, at concurrency `c`; prints one line.
    async fn level(
        &mut self,
        workload: &Arc<Workload>,
        c: usize,
        unit: &str,
    ) -> Result<Level, String> {
        let token_path = !matches!(**workload, Workload::Register { .. });
        let before = self.probe.map(|p| p.snapshot());
        let window = Instant::now();
        let mut requests = 0;
        let warmup = Duration::from_secs(self.args.warmup_secs);
        if !warmup.is_zero() {
            let (st, _) = self.phase(workload, c, warmup).await?;
            requests += st.ok + st.errors.values().sum::<u64>();
        }
        let measure = Duration::from_secs(self.args.duration_secs);
        let cpu_before = (self.server.cpu(), cpu_time("self"));
        let (mut st, elapsed) = self.phase(workload, c, measure).await?;
        let cores = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b).as_secs_f64() / elapsed.as_secs_f64()),
            _ => None,
        };
        let server_cores = cores(cpu_before.0, self.server.cpu());
        let bench_cores = cores(cpu_before.1, cpu_time("self"));
        let disk = match (self.probe, before) {
            (Some(p), Some(before)) => Some(DiskWrites {
                delta: before.delta(&p.snapshot()),
                requests: requests + st.ok + st.errors.values().sum::<u64>(),
                window_secs: window.elapsed().as_secs_f64(),
            }),
            _ => None,
        };
        let rss_kb = self.server.peak_rss_kb();
        self.peak_kb = self.peak_kb.max(rss_kb);
        st.latencies.sort_unstable();
        let secs = elapsed.as_secs_f64();
        let errors: u64 = st.errors.values().sum();
        let rate = st.ok as f64 / secs.max(1e-9);
        let (p50, p99) = (
            percentile_ms(&st.latencies, 0.50),
            percentile_ms(&st.latencies, 0.99),
        );
        let max = st.latencies.last().map_or(0.0, |&us| us as f64 / 1000.0);
        let rss_mib = rss_kb.map(|kb| kb as f64 / 1024.0);
        let rss = rss_mib.map_or("n/a".into(), |m| format!("{m:.1} MiB"));
        println!(
            "concurrency={c:<4} rate={rate:>9.1} {unit}  p50={p50:.3} ms  p99={p99:.3} ms  max={max:.3} ms  errors={errors}  ({} ok in {secs:.2} s, server peak RSS {rss})",
            st.ok
        );
        if errors > 0 {
            let kinds: Vec<String> = st.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!("  errors by kind: {}", kinds.join(", "));
        }
        if let (false, Some(e)) = (self.first_error_shown, &st.first_error) {
            println!("  first error: {e}");
            self.first_error_shown = true;
        }
        if let (Some(s), Some(b)) = (server_cores, bench_cores) {
            let per_request_us = s * secs * 1e6 / (st.ok + errors).max(1) as f64;
            println!(
                "  cpu: server {s:.2} cores ({per_request_us:.0} us per request), load generator {b:.2} cores, of {} on this machine",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
        }
        match &disk {
            Some(d) if token_path => println!("  disk: {}", d.describe()),
            Some(d) => println!("  disk: {}", d.delta.describe(d.requests)),
            None => {}
        }
        Ok(Level {
            concurrency: c,
            rate,
            ok: st.ok,
            errors,
            p50,
            p99,
            max,
            secs,
            rss_mib,
            server_cores,
            bench_cores,
            disk,
        })
    }

    async fn phase(
        &self,
        workload: &Arc<Workload>,
        concurrency: usize,
        duration: Duration,
    ) -> Result<(Stats, Duration), String> {
        run_phase(
            &self.target,
            workload,
            concurrency,
            duration,
            self.args.max_requests,
            &self.seq,
        )
        .await
    }
}

async fn bench(
    args: &Args,
    server: &Server,
    probe: Option<&DiskProbe>,
) -> Result<(Report, Option<u64>), String> {
    let target = Arc::new(Target {
        port: server.port,
        host: HeaderValue::from_str(&format!("127.0.0.1:{}", server.port))
            .map_err(|e| e.to_string())?,
    });
    let iat = HeaderValue::from_str(&format!("Bearer {}", server.token))
        .map_err(|e| format!("unusable initial access token: {e}"))?;
    println!(
        "charter-bench: server pid {} on 127.0.0.1:{}; durability: {}",
        server.pid, server.port, server.durability
    );
    if let Some(p) = probe {
        println!(
            "charter-bench: watching {} for commits (wal-index change counter)",
            p.database().display()
        );
    }
    let mut setup = Setup::new(target.clone());
    let endpoints = setup.discover().await?;
    let mut runner = Runner {
        args,
        server,
        probe,
        target: target.clone(),
        seq: Arc::new(AtomicU64::new(0)),
        peak_kb: None,
        first_error_shown: false,
    };
    let mut report = Report::default();
    let mut clients: Option<Arc<Vec<BenchClient>>> = None;
    // One window around everything on the token path (fetching the tokens
    // to introspect included), opened once the bench's clients exist.
    let mut token_path: Option<(disk::Snapshot, Instant, u64)> = None;
    for &kind in &args.phases {
        match kind {
            PhaseKind::Register => {
                println!(
                    "registrations (POST {}, initial access token):",
                    endpoints.register
                );
                let workload = Arc::new(Workload::Register {
                    path: endpoints.register.clone(),
                    auth: iat.clone(),
                });
                for &c in &args.concurrency {
                    let level = runner.level(&workload, c, "reg/s").await?;
                    report.registrations.push(level);
                }
            }
            PhaseKind::Token | PhaseKind::Introspect => {
                let clients = match &clients {
                    Some(c) => c.clone(),
                    None => {
                        let started = Instant::now();
                        let registered = Arc::new(
                            setup
                                .register_clients(&endpoints.register, &iat, args.clients)
                                .await?,
                        );
                        println!(
                            "set-up: registered {} clients (client_credentials, client_secret_basic, scope read) in {:.2} s",
                            registered.len(),
                            started.elapsed().as_secs_f64()
                        );
                        clients.insert(registered).clone()
                    }
                };
                if let (None, Some(p)) = (&token_path, probe) {
                    // Let the checkpointer copy the set-up's commits into
                    // the database file first, so sizes compare like with like.
                    tokio::time::sleep(CHECKPOINT_SETTLE).await;
                    token_path = Some((p.snapshot(), Instant::now(), 0));
                }
                if kind == PhaseKind::Token {
                    println!(
                        "tokens (POST {}, {TOKEN_REQUEST}, client_secret_basic, {} clients):",
                        endpoints.token,
                        clients.len()
                    );
                    let workload = Arc::new(Workload::Token {
                        path: endpoints.token.clone(),
                        clients,
                    });
                    for &c in &args.token_concurrency {
                        let level = runner.level(&workload, c, "tokens/s").await?;
                        add_requests(&mut token_path, &level);
                        report.tokens.push(level);
                    }
                } else {
                    let started = Instant::now();
                    let tokens = setup
                        .obtain_tokens(&endpoints.token, &clients, args.tokens)
                        .await?;
                    if let Some((_, _, n)) = &mut token_path {
                        *n += tokens.len() as u64;
                    }
                    println!(
                        "set-up: obtained {} access tokens in {:.2} s",
                        tokens.len(),
                        started.elapsed().as_secs_f64()
                    );
                    println!(
                        "introspections (POST {}, client_secret_basic by the owning client, {} tokens of {} clients):",
                        endpoints.introspect,
                        tokens.len(),
                        clients.len()
                    );
                    let workload = Arc::new(Workload::Introspect {
                        path: endpoints.introspect.clone(),
                        clients,
                        tokens,
                    });
                    for &c in &args.introspect_concurrency {
                        let level = runner.level(&workload, c, "introspections/s").await?;
                        add_requests(&mut token_path, &level);
                        report.introspections.push(level);
                    }
                }
            }
        }
    }
    if let (Some(p), Some((before, since, requests))) = (probe, token_path) {
        report.token_path = Some(DiskWrites {
            delta: before.delta(&p.snapshot()),
            requests,
            window_secs: since.elapsed().as_secs_f64(),
        });
    }
    runner.peak_kb = runner.peak_kb.max(server.peak_rss_kb());
    Ok((report, runner.peak_kb))
}

fn add_requests(window: &mut Option<(disk::Snapshot, Instant, u64)>, level: &Level) {
    if let (Some((_, _, n)), Some(d)) = (window, &level.disk) {
        *n += d.requests;
    }
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

#[derive(Default)]
struct Stats {
    ok: u64,
    latencies: Vec<u64>,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

impl Stats {
    fn fail(&mut self, kind: &str, detail: impl Display) {
        *self.errors.entry(kind.to_string()).or_default() += 1;
        if self.first_error.is_none() {
            let d: String = detail.to_string().chars().take(1000).collect();
            self.first_error = Some(format!("{kind}: {d}"));
        }
    }

    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.latencies.extend(other.latencies);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// Shared state of one phase: C workers run until the deadline or until
/// `max_requests` requests have been issued, whichever comes first.
struct Phase {
    target: Arc<Target>,
    workload: Arc<Workload>,
    deadline: Instant,
    max_requests: u64,
    issued: AtomicU64,
    seq: Arc<AtomicU64>,
}

async fn run_phase(
    target: &Arc<Target>,
    workload: &Arc<Workload>,
    concurrency: usize,
    duration: Duration,
    max_requests: u64,
    seq: &Arc<AtomicU64>,
) -> Result<(Stats, Duration), String> {
    let start = Instant::now();
    let phase = Arc::new(Phase {
        target: target.clone(),
        workload: workload.clone(),
        deadline: start + duration,
        max_requests,
        issued: AtomicU64::new(0),
        seq: seq.clone(),
    });
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        set.spawn(worker(phase.clone()));
    }
    let mut stats = Stats::default();
    while let Some(res) = set.join_next().await {
        stats.merge(res.map_err(|e| format!("worker task failed: {e}"))?);
    }
    Ok((stats, start.elapsed()))
}

async fn worker(ph: Arc<Phase>) -> Stats {
    let mut st = Stats::default();
    let hard_deadline = tokio::time::Instant::from_std(ph.deadline + GRACE);
    let expected = ph.workload.expected_status();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < ph.deadline && ph.issued.fetch_add(1, Relaxed) < ph.max_requests {
        if sender.as_ref().is_some_and(|s| s.is_closed()) {
            sender = None;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(ph.target.port).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    st.fail("connect", e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let n = ph.seq.fetch_add(1, Relaxed);
        let req = match ph.workload.request(&ph.target, n) {
            Ok(r) => r,
            Err(e) => {
                st.fail("request", e);
                break;
            }
        };
        let t0 = Instant::now();
        match tokio::time::timeout_at(hard_deadline, send(s, req)).await {
            Err(_) => {
                st.fail("timeout", "request still pending after the phase deadline");
                break;
            }
            Ok(Err(e)) => {
                st.fail("transport", e);
                sender = None;
            }
            Ok(Ok((status, body))) => {
                st.latencies
                    .push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                if status == expected && ph.workload.body_ok(&body) {
                    st.ok += 1;
                } else {
                    let kind = if status == expected {
                        format!("{}-bad-body", status.as_u16())
                    } else {
                        status.as_u16().to_string()
                    };
                    st.fail(
                        &kind,
                        format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
                    );
                }
            }
        }
    }
    st
}

async fn connect(port: u16) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    s: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), hyper::Error> {
    s.ready().await?;
    let resp = s.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Endpoint paths from discovery (requests still go to 127.0.0.1).
struct Endpoints {
    register: String,
    token: String,
    introspect: String,
}

/// Sequential set-up requests over one keep-alive connection.
struct Setup {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Setup {
    fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// Sends one request and answers the status and the JSON body.
    async fn call(
        &mut self,
        what: &str,
        req: Result<Request<Full<Bytes>>, hyper::http::Error>,
        expected: StatusCode,
    ) -> Result<serde_json::Value, String> {
        let req = req.map_err(|e| format!("{what}: {e}"))?;
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(
                connect(self.target.port)
                    .await
                    .map_err(|e| format!("{what}: {e}"))?,
            );
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(format!("{what}: no connection"));
        };
        let (status, body) = match tokio::time::timeout(SETUP_TIMEOUT, send(sender, req)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(format!("{what}: {e}"));
            }
            Err(_) => {
                self.sender = None;
                return Err(format!("{what}: no answer within {SETUP_TIMEOUT:?}"));
            }
        };
        if status != expected {
            return Err(format!(
                "{what}: HTTP {status}, expected {expected}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{what}: body is not JSON: {e}"))
    }

    fn post(
        &self,
        path: &str,
        content_type: &'static str,
        auth: &HeaderValue,
        body: String,
    ) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(CONTENT_TYPE, content_type)
            .header(AUTHORIZATION, auth.clone())
            .body(Full::new(Bytes::from(body)))
    }

    /// OpenID Connect discovery: the registration, token and introspection endpoints.
    async fn discover(&mut self) -> Result<Endpoints, String> {
        let req = Request::builder()
            .method(Method::GET)
            .uri("/.well-known/openid-configuration")
            .header(HOST, self.target.host.clone())
            .body(Full::new(Bytes::new()));
        let doc = self.call("discovery", req, StatusCode::OK).await?;
        let path = |key: &str| -> Result<String, String> {
            let url = doc
                .get(key)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("discovery: no {key}"))?;
            endpoint_path(url)
                .ok_or_else(|| format!("discovery: {key} {url:?} is not an http(s) URL"))
        };
        Ok(Endpoints {
            register: path("registration_endpoint")?,
            token: path("token_endpoint")?,
            introspect: path("introspection_endpoint")?,
        })
    }

    async fn register_clients(
        &mut self,
        path: &str,
        iat: &HeaderValue,
        count: usize,
    ) -> Result<Vec<BenchClient>, String> {
        let mut clients = Vec::with_capacity(count);
        for i in 0..count {
            let body = format!(
                r#"{{"client_name":"charter-bench token client {i}","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"read"}}"#
            );
            let req = self.post(path, "application/json", iat, body);
            let what = "registering a token client";
            let v = self.call(what, req, StatusCode::CREATED).await?;
            let field = |k: &str| {
                v.get(k)
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| format!("{what}: no {k} in {v}"))
            };
            let basic = basic_auth(field("client_id")?, field("client_secret")?);
            clients.push(BenchClient {
                basic: HeaderValue::from_str(&basic).map_err(|e| format!("{what}: {e}"))?,
            });
        }
        Ok(clients)
    }

    /// `count` access tokens, round-robin over `clients`, as `token=...` bodies.
    async fn obtain_tokens(
        &mut self,
        path: &str,
        clients: &[BenchClient],
        count: usize,
    ) -> Result<Vec<(usize, Bytes)>, String> {
        let mut tokens = Vec::with_capacity(count);
        for i in 0..count {
            let owner = i % clients.len();
            let req = self.post(path, FORM, &clients[owner].basic, TOKEN_REQUEST.into());
            let what = "obtaining a token to introspect";
            let v = self.call(what, req, StatusCode::OK).await?;
            let token = v
                .get("access_token")
                .and_then(|t| t.as_str())
                .ok_or_else(|| format!("{what}: no access_token in {v}"))?;
            tokens.push((owner, Bytes::from(format!("token={}", form_encode(token)))));
        }
        Ok(tokens)
    }
}

/// The path (and query) of an absolute http(s) URL.
fn endpoint_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    Some(rest.find('/').map_or("/", |i| &rest[i..]).to_string())
}

/// `Basic` credentials of RFC 6749 §2.3.1: id and secret form-encoded first.
fn basic_auth(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", base64(pair.as_bytes()))
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Failures of one floor (rate, p99 and, for the token path, errors) at
/// [`CHECK_CONCURRENCY`].
fn check_floor(
    failures: &mut Vec<String>,
    what: &str,
    levels: &[Level],
    min_rate: f64,
    max_p99_ms: f64,
    errors_fail: bool,
) {
    let c = CHECK_CONCURRENCY;
    let Some(level) = levels.iter().find(|l| l.concurrency == c) else {
        failures.push(format!("no {what} result at concurrency {c}"));
        return;
    };
    if level.rate < min_rate {
        failures.push(format!(
            "{what} rate {:.1}/s < {min_rate}/s at concurrency {c}",
            level.rate
        ));
    }
    if level.p99 >= max_p99_ms {
        failures.push(format!(
            "{what} p99 {:.3} ms >= {max_p99_ms} ms at concurrency {c}",
            level.p99
        ));
    }
    if errors_fail && level.errors > 0 {
        failures.push(format!(
            "{what}: {} failed requests at concurrency {c}",
            level.errors
        ));
    }
}

fn check(args: &Args, report: &Report, disk_measured: bool, peak_mib: Option<f64>) -> bool {
    println!(
        "check at concurrency {CHECK_CONCURRENCY}: registrations >= {CHECK_MIN_REGISTRATION_RATE}/s, p99 < {CHECK_MAX_REGISTRATION_P99_MS} ms; tokens >= {}/s, p99 < {} ms; introspections >= {}/s, p99 < {} ms; no per-request disk writes on the token path; peak RSS < {CHECK_MAX_RSS_MIB} MiB",
        args.check_min_token_rate,
        args.check_max_token_p99_ms,
        args.check_min_introspection_rate,
        args.check_max_introspection_p99_ms,
    );
    let mut failures = Vec::new();
    let floors = [
        (
            PhaseKind::Register,
            "registration",
            &report.registrations,
            CHECK_MIN_REGISTRATION_RATE,
            CHECK_MAX_REGISTRATION_P99_MS,
            false,
        ),
        (
            PhaseKind::Token,
            "token",
            &report.tokens,
            args.check_min_token_rate,
            args.check_max_token_p99_ms,
            true,
        ),
        (
            PhaseKind::Introspect,
            "introspection",
            &report.introspections,
            args.check_min_introspection_rate,
            args.check_max_introspection_p99_ms,
            true,
        ),
    ];
    for (kind, what, levels, min_rate, max_p99_ms, errors_fail) in floors {
        if args.phases.contains(&kind) {
            check_floor(
                &mut failures,
                what,
                levels,
                min_rate,
                max_p99_ms,
                errors_fail,
            );
        } else {
            println!("check: {what} floor not checked (phase not run)");
        }
    }
    let token_path_ran = args
        .phases
        .iter()
        .any(|k| matches!(k, PhaseKind::Token | PhaseKind::Introspect));
    if !disk_measured {
        println!("check: token path disk writes not checked (not the SQLite backend)");
    } else if token_path_ran {
        match &report.token_path {
            Some(w) if w.delta.transactions.is_none() => failures
                .push("token path disk writes: the SQLite WAL index could not be read".into()),
            Some(w) if !w.per_request_free() => {
                failures.push(format!("token path disk writes: {}", w.describe()))
            }
            Some(_) => {}
            None => failures.push("token path disk writes: not measured".into()),
        }
    }
    match peak_mib {
        None => failures.push("server peak RSS unavailable".into()),
        Some(m) if m >= CHECK_MAX_RSS_MIB => {
            failures.push(format!("peak RSS {m:.1} MiB >= {CHECK_MAX_RSS_MIB} MiB"))
        }
        Some(_) => {}
    }
    for f in &failures {
        println!("CHECK FAILED: {f}");
    }
    if failures.is_empty() {
        println!("check passed");
    }
    failures.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn basic_auth_form_encodes_id_and_secret() {
        assert_eq!(form_encode("a-b_c.d*e"), "a-b_c.d*e");
        assert_eq!(form_encode("s+cr t%:"), "s%2Bcr+t%25%3A");
        assert_eq!(basic_auth("id", "secret"), "Basic aWQ6c2VjcmV0");
    }

    #[test]
    fn endpoint_paths_come_from_absolute_urls() {
        assert_eq!(
            endpoint_path("http://127.0.0.1:8080/token").as_deref(),
            Some("/token")
        );
        assert_eq!(
            endpoint_path("https://as.example/tenant/introspect").as_deref(),
            Some("/tenant/introspect")
        );
        assert_eq!(endpoint_path("http://127.0.0.1:8080").as_deref(), Some("/"));
        assert_eq!(endpoint_path("/token"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&us, 0.50), 50.0);
        assert_eq!(percentile_ms(&us, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
