//! `CHARTER_*` environment variables configure the server without flags.

use crate::support::Charter;

#[test]
fn env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (charter, base) = Charter::serve(
        dir.path(),
        &[] as &[&str],
        &[
            ("CHARTER_LISTEN", "127.0.0.1:0".as_ref()),
            ("CHARTER_DATA_DIR", data.as_os_str()),
        ],
    );
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":8080") && !base.ends_with(":0"),
        "{base}"
    );
    assert!(
        data.join("charter.db").is_file(),
        "CHARTER_DATA_DIR is used"
    );
    assert!(data.join("admin-token").is_file());
    assert!(
        !dir.path().join("charter-data").exists(),
        "the default data directory is not used"
    );
    drop(charter);
}
