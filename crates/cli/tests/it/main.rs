//! Black-box tests of the `charter` binary: each test spawns the real
//! executable in a fresh temporary directory, reads what it prints and talks
//! to it over HTTP(S) on an ephemeral loopback port.

mod admin_cli;
mod config_errors;
mod env;
mod policy;
mod support;
mod tls;
mod zero_config;
