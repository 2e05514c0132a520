//! Running Node.js programs from the tests (`node_client.rs`,
//! `mcp_sdk.rs`): finding `node` and `npm`, running a command with a time
//! limit, and `npm ci` in an npm folder when its `node_modules` is missing
//! or does not hold the versions `package.json` pins.
//!
//! Node.js 20+ and npm must be installed (or named by `CHARTER_TEST_NODE` /
//! `CHARTER_TEST_NPM`): without them the tests that need them fail rather
//! than skip.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};
use tokio::process::Command;

pub const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
pub const NODE_HINT: &str = "install Node.js 20 or later, or set CHARTER_TEST_NODE to its path";
const NPM_HINT: &str = "install npm (it comes with Node.js), or set CHARTER_TEST_NPM to its path";

/// The program named by `variable`, else `default` on the PATH.
pub fn program(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// `node`, or what `CHARTER_TEST_NODE` names.
pub fn node() -> String {
    program("CHARTER_TEST_NODE", "node")
}

/// Runs `command` to completion within `limit`, with a message naming
/// `what` when it cannot start or does not finish.
pub async fn run(mut command: Command, what: &str, hint: &str, limit: Duration) -> Output {
    command.kill_on_drop(true);
    let child = command.output();
    match tokio::time::timeout(limit, child).await {
        Err(_) => panic!("{what} did not finish within {limit:?}"),
        Ok(Err(e)) => panic!("{what} could not start ({e}); {hint}"),
        Ok(Ok(output)) => output,
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Node.js 20 or later (its WebCrypto, fetch and `AbortSignal.any`).
pub async fn check_node(node: &str) {
    let mut command = Command::new(node);
    command.arg("--version");
    let output = run(
        command,
        &format!("`{node} --version`"),
        NODE_HINT,
        VERSION_TIMEOUT,
    )
    .await;
    let version = text(&output.stdout);
    let major: Option<u32> = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    assert!(
        output.status.success() && major.is_some_and(|m| m >= 20),
        "`{node} --version` says {:?}; {NODE_HINT}",
        version.trim()
    );
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The dependencies `package.json` in `dir` pins whose installed version
/// (in `node_modules`) is not the pinned one, with what is installed.
fn stale_dependencies(dir: &Path) -> Vec<(String, String, Option<String>)> {
    let manifest = read_json(&dir.join("package.json"))
        .unwrap_or_else(|| panic!("{} has a readable package.json", dir.display()));
    let dependencies = manifest["dependencies"]
        .as_object()
        .unwrap_or_else(|| panic!("{}/package.json has dependencies", dir.display()));
    dependencies
        .iter()
        .filter_map(|(name, pinned)| {
            let pinned = pinned
                .as_str()
                .unwrap_or_else(|| panic!("{}: {name} is pinned by a string", dir.display()));
            let installed = read_json(&dir.join("node_modules").join(name).join("package.json"))
                .and_then(|m| m["version"].as_str().map(str::to_owned));
            (installed.as_deref() != Some(pinned))
                .then(|| (name.clone(), pinned.to_owned(), installed))
        })
        .collect()
}

/// A lock on `npm ci` in one folder, across test processes (nextest runs
/// each test in its own): a directory created atomically in the temporary
/// directory, removed on drop. One left behind by a killed run is taken
/// over once it is older than any `npm ci` may last.
struct InstallLock(PathBuf);

impl InstallLock {
    async fn acquire(dir: &Path) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut hasher);
        let path =
            std::env::temp_dir().join(format!("charter-npm-ci-{:016x}.lock", hasher.finish()));
        let started = std::time::Instant::now();
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return Self(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|age| age > NPM_CI_TIMEOUT + Duration::from_secs(60)) {
                        let _ = std::fs::remove_dir(&path);
                        continue;
                    }
                    assert!(
                        started.elapsed() < NPM_CI_TIMEOUT + Duration::from_secs(30),
                        "another test held {} for longer than an npm ci may last",
                        path.display()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot create the lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `npm ci` in `dir` (from its committed lockfile) unless every dependency
/// `package.json` pins is installed at that version.
pub async fn install_dependencies(dir: &Path) {
    if stale_dependencies(dir).is_empty() {
        return;
    }
    let _lock = InstallLock::acquire(dir).await;
    // Another test may have installed them while this one waited.
    if stale_dependencies(dir).is_empty() {
        return;
    }
    let npm = program("CHARTER_TEST_NPM", "npm");
    let mut command = Command::new(&npm);
    command
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir);
    let output = run(
        command,
        &format!("`{npm} ci` in {}", dir.display()),
        NPM_HINT,
        NPM_CI_TIMEOUT,
    )
    .await;
    assert!(
        output.status.success(),
        "`{npm} ci` in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    let stale = stale_dependencies(dir);
    assert!(
        stale.is_empty(),
        "after npm ci in {}, these are not installed at the pinned version (name, pinned, installed): {stale:?}",
        dir.display()
    );
}

/// Runs `node script` in `dir` with `env`, within `limit`, and returns the
/// JSON of the last line it printed, or a message with its output.
pub async fn run_script(
    dir: &Path,
    script: &str,
    env: &[(&str, &str)],
    what: &str,
    limit: Duration,
) -> Result<Value, String> {
    let node = node();
    let mut command = Command::new(&node);
    command.arg(script).current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = run(
        command,
        &format!("{what} (node {script})"),
        NODE_HINT,
        limit,
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{stderr}\n{stdout}",
            output.status
        ));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| format!("{script} printed no JSON line ({e}):\n{stdout}\n{stderr}"))
}
