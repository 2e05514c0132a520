//! `charter org|iat|admin-token …` against a running server: the CLI talks
//! to the admin API with the token from the data directory or
//! `CHARTER_ADMIN_TOKEN`, prints tables or `--json`, and exits 1 on refusal.

use std::ffi::OsStr;

use crate::support::Charter;

fn cli(
    dir: &std::path::Path,
    server: &str,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> (Option<i32>, String) {
    let mut full = args.to_vec();
    full.extend(["--server", server]);
    let exited = Charter::spawn(dir, &full, env).wait_exit();
    (exited.status.code(), exited.stdout.join("\n"))
}

#[test]
fn admin_commands_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = Charter::serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let run = |args: &[&str]| cli(dir.path(), &base, args, &[]);

    assert_eq!(run(&["org", "create", "acme"]).0, Some(0));
    let (code, table) = run(&["org", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        table.lines().next().unwrap().contains("NAME")
            && table.contains("acme")
            && table.contains("default"),
        "{table}"
    );

    let (code, issued) = run(&["iat", "issue", "--org", "acme", "--max-uses", "2", "--json"]);
    assert_eq!(code, Some(0));
    let issued: serde_json::Value = serde_json::from_str(&issued).unwrap();
    assert!(issued["initial_access_token"]
        .as_str()
        .unwrap()
        .starts_with("chi_"));
    let (_, listed) = run(&["iat", "list", "--org", "acme"]);
    assert!(listed.contains(issued["id"].as_str().unwrap()), "{listed}");

    assert_eq!(
        run(&["org", "suspend", "acme", "--reason", "audit"]).0,
        Some(0)
    );
    assert_eq!(
        run(&["org", "suspend", "acme", "--reason", "again"]).0,
        Some(1),
        "a refusal exits 1"
    );

    // Client reports and counts: the bootstrap organization has no clients yet.
    let (code, counts) = run(&["client", "counts", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&counts).unwrap(),
        serde_json::json!({"counts": []})
    );
    let (code, report) = run(&["client", "report", "--expiring-within-days", "30", "--json"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("\"clients\""), "{report}");
    assert_eq!(
        run(&["client", "report", "--status", "sleeping"]).0,
        Some(1),
        "a bad filter is refused"
    );
    assert_eq!(
        run(&["client", "revoke", "no-such-client", "--reason", "x"]).0,
        Some(1)
    );

    let (_, reader) = run(&["admin-token", "issue", "--role", "read_only", "--json"]);
    let reader: serde_json::Value = serde_json::from_str(&reader).unwrap();
    let token = reader["admin_token"].as_str().unwrap();
    let as_reader = |args: &[&str]| {
        cli(
            dir.path(),
            &base,
            args,
            &[("CHARTER_ADMIN_TOKEN", OsStr::new(token))],
        )
    };
    assert_eq!(as_reader(&["org", "list"]).0, Some(0));
    assert_eq!(
        as_reader(&["org", "create", "other"]).0,
        Some(1),
        "read-only cannot create"
    );
}
