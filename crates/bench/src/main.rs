//! `charter-bench`: a bounded load test of Charter's dynamic client
//! registration endpoint (RFC 7591, `POST /register`).
//!
//! It spawns a private `charter serve` on `127.0.0.1:0` with a throwaway data
//! directory, reads the listening port, the initial access token and the
//! durability mode from the server's stdout, and then, for each requested
//! concurrency level, drives C keep-alive HTTP/1.1 connections that register
//! clients as fast as the server accepts them (after a short warm-up). It
//! reports successful registrations per second, p50/p99/max latency, error
//! counts and the server's peak resident memory (`VmHWM`). Every phase is
//! bounded in time and in request count, and all traffic stays on loopback:
//! nothing ever connects anywhere but 127.0.0.1.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time an in-flight request may take after a phase's deadline.
const GRACE: Duration = Duration::from_secs(5);
const CHECK_CONCURRENCY: usize = 64;
const CHECK_MIN_RATE: f64 = 5000.0;
const CHECK_MAX_P99_MS: f64 = 25.0;
const CHECK_MAX_RSS_MIB: f64 = 100.0;

/// Load-test dynamic client registration against a private, loopback-only Charter server.
#[derive(Parser, Debug)]
#[command(name = "charter-bench", version)]
struct Args {
    /// Path to the `charter` binary (default: next to this executable).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Comma-separated concurrency levels (one connection per worker).
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    concurrency: Vec<usize>,
    /// Warm-up seconds per level (not measured).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Measured seconds per level (upper bound).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Upper bound on requests issued per phase.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Forwarded to the server as `--database-url URL`.
    #[arg(long)]
    database_url: Option<String>,
    /// Extra argument passed through to `charter serve` (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Exit non-zero unless concurrency 64 reaches 5000 reg/s, p99 < 25 ms and peak RSS < 100 MiB.
    #[arg(long)]
    check: bool,
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
}

async fn run(args: Args) -> Result<bool, String> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err("--concurrency needs one or more positive integers".into());
    }
    let started = Instant::now();
    let server = start_server(&args).await?;
    let outcome = tokio::select! {
        r = bench(&args, &server) => r,
        Ok(()) = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    let durability = server.durability.clone();
    server.shutdown().await;
    let (results, peak_kb) = outcome?;

    let peak_mib = peak_kb.map(|kb| kb as f64 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let total = started.elapsed().as_secs_f64();
    println!("durability: {durability}");
    match peak_mib {
        Some(m) => println!("server peak RSS: {m:.1} MiB"),
        None => println!("server peak RSS: unavailable"),
    }
    println!("total duration: {total:.2} s, cores: {cores}");
    let json = serde_json::json!({
        "results": results,
        "peak_rss_mib": peak_mib,
        "durability": durability,
        "total_secs": total,
        "cores": cores,
    });
    println!("{json}");
    if args.check {
        return Ok(check(&results, peak_mib));
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

struct Target {
    port: u16,
    host: HeaderValue,
    auth: HeaderValue,
}

async fn bench(
    args: &Args,
    server: &Server,
) -> Result<(Vec<serde_json::Value>, Option<u64>), String> {
    let target = Arc::new(Target {
        port: server.port,
        host: HeaderValue::from_str(&format!("127.0.0.1:{}", server.port))
            .map_err(|e| e.to_string())?,
        auth: HeaderValue::from_str(&format!("Bearer {}", server.token))
            .map_err(|e| format!("unusable initial access token: {e}"))?,
    });
    println!(
        "charter-bench: server pid {} on 127.0.0.1:{}; durability: {}",
        server.pid, server.port, server.durability
    );
    let seq = Arc::new(AtomicU64::new(0));
    let mut results = Vec::new();
    let mut peak_kb: Option<u64> = None;
    let mut first_error_shown = false;
    for &c in &args.concurrency {
        let warmup = Duration::from_secs(args.warmup_secs);
        if !warmup.is_zero() {
            run_phase(&target, c, warmup, args.max_requests, &seq).await?;
        }
        let measure = Duration::from_secs(args.duration_secs);
        let (mut st, elapsed) = run_phase(&target, c, measure, args.max_requests, &seq).await?;
        let rss_kb = server.peak_rss_kb();
        peak_kb = peak_kb.max(rss_kb);
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
            "concurrency={c:<4} rate={rate:>9.1} reg/s  p50={p50:.3} ms  p99={p99:.3} ms  max={max:.3} ms  errors={errors}  ({} ok in {secs:.2} s, server peak RSS {rss})",
            st.ok
        );
        if errors > 0 {
            let kinds: Vec<String> = st.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!("  errors by kind: {}", kinds.join(", "));
        }
        if let (false, Some(e)) = (first_error_shown, &st.first_error) {
            println!("  first error: {e}");
            first_error_shown = true;
        }
        results.push(serde_json::json!({
            "concurrency": c, "registrations_per_sec": rate, "successes": st.ok, "errors": errors,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max, "measured_secs": secs, "peak_rss_mib": rss_mib,
        }));
    }
    peak_kb = peak_kb.max(server.peak_rss_kb());
    Ok((results, peak_kb))
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
    deadline: Instant,
    max_requests: u64,
    issued: AtomicU64,
    seq: Arc<AtomicU64>,
}

async fn run_phase(
    target: &Arc<Target>,
    concurrency: usize,
    duration: Duration,
    max_requests: u64,
    seq: &Arc<AtomicU64>,
) -> Result<(Stats, Duration), String> {
    let start = Instant::now();
    let (target, seq, issued) = (target.clone(), seq.clone(), AtomicU64::new(0));
    let phase = Arc::new(Phase {
        target,
        deadline: start + duration,
        max_requests,
        issued,
        seq,
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
        let req = match build_request(&ph.target, n) {
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
                let has_client_id = || {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .is_some_and(|v| v.get("client_id").is_some_and(|id| id.is_string()))
                };
                if status == StatusCode::CREATED && has_client_id() {
                    st.ok += 1;
                } else {
                    let kind = if status == StatusCode::CREATED {
                        "201-bad-body".into()
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

fn build_request(t: &Target, n: u64) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let body = if n & 1 == 0 {
        format!(
            r#"{{"client_name":"bench-{n}","redirect_uris":["https://app.example.com/cb"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"client_secret_basic"}}"#
        )
    } else {
        format!(
            r#"{{"client_name":"bench-{n}","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}}"#
        )
    };
    Request::builder()
        .method(Method::POST)
        .uri("/register")
        .header(HOST, t.host.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, t.auth.clone())
        .body(Full::new(Bytes::from(body)))
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

fn check(results: &[serde_json::Value], peak_mib: Option<f64>) -> bool {
    let mut failures = Vec::new();
    let level = results
        .iter()
        .find(|r| r["concurrency"] == CHECK_CONCURRENCY);
    match level.map(|r| (r["registrations_per_sec"].as_f64(), r["p99_ms"].as_f64())) {
        Some((Some(rate), Some(p99))) => {
            if rate < CHECK_MIN_RATE {
                failures.push(format!(
                    "rate {rate:.1}/s < {CHECK_MIN_RATE}/s at concurrency 64"
                ));
            }
            if p99 >= CHECK_MAX_P99_MS {
                failures.push(format!(
                    "p99 {p99:.3} ms >= {CHECK_MAX_P99_MS} ms at concurrency 64"
                ));
            }
        }
        _ => failures.push(format!("no result at concurrency {CHECK_CONCURRENCY}")),
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
