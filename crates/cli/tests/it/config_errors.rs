//! Configuration problems stop the binary with exit code 2 and name the key.

use crate::support::{run, Exited};

fn assert_fails_naming(exited: &Exited, keys: &[&str]) {
    assert_eq!(
        exited.status.code(),
        Some(2),
        "stdout {:?}\nstderr {}",
        exited.stdout,
        exited.stderr
    );
    for key in keys {
        assert!(
            exited.stderr.contains(key),
            "stderr does not name {key}:\n{}",
            exited.stderr
        );
    }
    assert!(
        !exited.stdout.iter().any(|l| l.starts_with("Listening on")),
        "{:?}",
        exited.stdout
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();

    // Every problem is reported at once, each with its key.
    let exited = run(
        dir.path(),
        &[
            "serve",
            "--issuer",
            "http://as.example.com",
            "--database-url",
            "mysql://x",
            "--listen",
            "nowhere",
        ],
    );
    assert_fails_naming(
        &exited,
        &["server.issuer", "storage.database_url", "server.listen"],
    );
    assert!(
        !dir.path().join("charter-data").exists(),
        "nothing is created for an invalid configuration"
    );

    // An unknown key in the file is named, not ignored.
    let file = dir.path().join("charter.toml");
    std::fs::write(&file, "[server]\nlisten_addr = \"x\"\n").unwrap();
    let exited = run(
        dir.path(),
        &["serve".as_ref(), "--config".as_ref(), file.as_os_str()],
    );
    assert_fails_naming(&exited, &["listen_addr"]);
    let exited = run(dir.path(), &["check-config".as_ref(), file.as_os_str()]);
    assert_fails_naming(&exited, &["listen_addr"]);

    // The example configuration shipped with the repository is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charter.example.toml");
    let exited = run(dir.path(), &["check-config", example]);
    assert!(exited.status.success(), "{example}: {}", exited.stderr);
    assert!(
        exited.stdout.iter().any(|l| l.ends_with(": valid")),
        "{:?}",
        exited.stdout
    );
}
