//! Spawning the real `charter` binary and reading what it prints.
//!
//! Output is read on threads and handed over through channels, so every
//! wait has a deadline and no test sleeps to synchronize.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the binary may take to print a line or to exit.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const BIN: &str = env!("CARGO_BIN_EXE_charter");

/// A running `charter` process; killed when dropped.
pub struct Charter {
    child: Child,
    stdout: Receiver<String>,
    stdout_open: bool,
    /// Every stdout line received so far.
    pub lines: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
}

/// A process that has exited (or was killed), with all its output.
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Charter {
    /// Runs `charter ARGS` in `cwd` with no `CHARTER_*` variable inherited,
    /// only those in `env`.
    pub fn spawn<S: AsRef<OsStr>>(cwd: &Path, args: &[S], env: &[(&str, &OsStr)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHARTER_") {
                command.env_remove(&key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn the charter binary");

        let (line_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let stderr = Arc::new(Mutex::new(String::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
            let _ = done_tx.send(());
        });

        Self {
            child,
            stdout,
            stdout_open: true,
            lines: Vec::new(),
            stderr,
            stderr_done,
        }
    }

    /// Runs `charter serve ARGS` in `cwd` and waits until it has printed its
    /// start-up lines; returns the process and the base URL it listens on.
    pub fn serve<S: AsRef<OsStr>>(
        cwd: &Path,
        args: &[S],
        env: &[(&str, &OsStr)],
    ) -> (Self, String) {
        let mut full: Vec<&OsStr> = vec![OsStr::new("serve")];
        full.extend(args.iter().map(AsRef::as_ref));
        let mut charter = Self::spawn(cwd, &full, env);
        let base = charter.line("Listening on ");
        charter.line("Durability: ");
        (charter, base)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the next stdout line that starts with `prefix` and returns
    /// the rest of it. Panics, showing all output, after [`TIMEOUT`] or if
    /// the process closes stdout first.
    pub fn line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(wait) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(e) => {
                    if e == RecvTimeoutError::Disconnected {
                        self.stdout_open = false;
                    }
                    let why = match e {
                        RecvTimeoutError::Timeout => "no such line within the timeout",
                        RecvTimeoutError::Disconnected => "stdout closed first",
                    };
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "waiting for a line starting with {prefix:?}: {why} (exit status {status:?})\n\
                         --- stdout ---\n{}\n--- stderr ---\n{}",
                        self.lines.join("\n"),
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Reads stdout and stderr to their end, within [`TIMEOUT`].
    fn drain(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.stdout_open {
            match self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Disconnected) => self.stdout_open = false,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "stdout still open after {TIMEOUT:?}:\n{}\n--- stderr ---\n{}",
                        self.lines.join("\n"),
                        self.stderr()
                    );
                }
            }
        }
        if self
            .stderr_done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            == Err(RecvTimeoutError::Timeout)
        {
            let _ = self.child.kill();
            panic!("stderr still open after {TIMEOUT:?}:\n{}", self.stderr());
        }
    }

    fn exited(&mut self) -> Exited {
        let status = self.child.wait().expect("wait for charter");
        Exited {
            status,
            stdout: self.lines.clone(),
            stderr: self.stderr(),
        }
    }

    /// Waits for the process to exit by itself (its output ends first).
    pub fn wait_exit(mut self) -> Exited {
        self.drain();
        self.exited()
    }

    /// Kills the process and returns everything it printed.
    pub fn kill(mut self) -> Exited {
        let _ = self.child.kill();
        self.drain();
        self.exited()
    }
}

impl Drop for Charter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command that must exit by itself, such as `check-config`.
pub fn run<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Exited {
    Charter::spawn(cwd, args, &[]).wait_exit()
}
