//! `charter policy lint` and `charter policy check`: the dry run decides
//! exactly as registration would and creates nothing.

use crate::support::run;

const CONFIG: &str = r#"
[policy]
version = "v7"
default_profile = "agents"

[policy.profiles.agents]
grant_types = ["client_credentials"]
scopes = ["read", "deploy"]
default_scope = "read"
approval = "when_scopes_outside"
approval_scopes = ["read"]
"#;

#[test]
fn policy_check_reports_each_decision() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("charter.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let cases = [
        (
            r#"{"grant_types":["client_credentials"]}"#,
            "admit",
            0,
            "default",
        ),
        (
            r#"{"grant_types":["client_credentials"],"scope":"read deploy"}"#,
            "pending",
            0,
            "deploy",
        ),
        (
            r#"{"grant_types":["authorization_code"],"redirect_uris":["https://a.example/cb"]}"#,
            "refuse",
            1,
            "not allowed by profile",
        ),
    ];
    for (i, (request, decision, code, fragment)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("request-{i}.json"));
        std::fs::write(&file, request).unwrap();
        let exited = run(
            dir.path(),
            &[
                "policy".as_ref(),
                "check".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                file.as_os_str(),
            ],
        );
        let stdout = exited.stdout.join("\n");
        let answer: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(answer["decision"], decision, "{request}: {answer}");
        assert_eq!(answer["policy_version"], "v7");
        assert_eq!(exited.status.code(), Some(code), "{request}");
        assert!(
            stdout.contains(fragment),
            "{fragment} missing from {stdout}"
        );
    }
    assert!(
        !dir.path().join("charter-data").exists(),
        "a dry run creates nothing"
    );
}

#[test]
fn policy_lint_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        CONFIG
            .replace("[policy]\n", "")
            .replace("policy.profiles", "profiles"),
    )
    .unwrap();
    let exited = run(
        dir.path(),
        &["policy".as_ref(), "lint".as_ref(), good.as_os_str()],
    );
    assert_eq!(exited.status.code(), Some(0), "{}", exited.stderr);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "version = \"v1\"\n[profiles.default]\napproval = \"maybe\"\ngrant_types = [\"implicit\"]\n").unwrap();
    let exited = run(
        dir.path(),
        &["policy".as_ref(), "lint".as_ref(), bad.as_os_str()],
    );
    assert_eq!(exited.status.code(), Some(2));
    for key in ["profiles.default.approval", "profiles.default.grant_types"] {
        assert!(
            exited.stderr.contains(key),
            "{key} missing from {}",
            exited.stderr
        );
    }
}
