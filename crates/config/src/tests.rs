use super::*;

fn parse(text: &str) -> Result<Config, Error> {
    RawConfig::from_toml_str(text, Path::new("test.toml"))?.validate()
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Err(Error::Invalid(p)) => p,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn empty_config_is_the_zero_config_default() {
    let c = parse("").unwrap();
    assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    assert!(c.server.issuer.is_none());
    assert_eq!(
        c.storage,
        StorageConfig::Sqlite {
            url: "sqlite:./charter-data/charter.db".into()
        }
    );
    assert!(c.registration.rotate_registration_access_token_on_update);
    assert_eq!(
        c.registration.client_secret_lifetime,
        Duration::from_secs(90 * 86_400)
    );
}

/// The commented example in the repository validates.
#[test]
fn example_config_validates() {
    let text = include_str!("../../../charter.example.toml");
    let c = parse(text).unwrap();
    assert_eq!(c.server.issuer.unwrap().as_str(), "http://127.0.0.1:8080");
    // The example issuer is validated, keys and all, but not trusted.
    let statements = &c.software_statements;
    assert!(!statements.enabled);
    assert_eq!(statements.issuers.len(), 1);
    assert_eq!(statements.issuers[0].algorithms, ["ES256"]);
    assert!(statements
        .issuer("https://statements.partners.example.com")
        .is_none());
}

const EC_KEY: &str = r#"{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "AoT7VFTPJUk8DrnF7-RDkDFclzFultfbj70B9cPQgWU", "y": "6YLTKpTWX-m_twErfy869w-Vp7wTa-BqPd9XhFyJkTA"}"#;

fn statements_toml(issuer: &str) -> String {
    format!(
        "[policy]\nversion = \"v1\"\n[policy.profiles.default]\n[policy.profiles.partners]\n\
         [software_statements]\nenabled = true\n[[software_statements.issuers]]\n{issuer}"
    )
}

#[test]
fn software_statement_issuers() {
    let c = parse(&statements_toml(&format!(
        "issuer = \"Partner Directory\"\norganization = \"partners\"\nprofile = \"partners\"\njwks = '{{\"keys\": [{EC_KEY}]}}'\n"
    )))
    .unwrap();
    let trusted = c.software_statements.issuer("Partner Directory").unwrap();
    assert_eq!(trusted.organization, "partners");
    assert_eq!(trusted.algorithms, DEFAULT_STATEMENT_ALGS);
    let IssuerKeys::Inline(keys) = &trusted.keys else {
        panic!("inline keys expected: {:?}", trusted.keys);
    };
    assert_eq!(keys.len(), 1);
    assert!(c.software_statements.issuer("partner directory").is_none());
    // A table works as well as JSON text.
    let c = parse(&statements_toml(
        "issuer = \"i\"\norganization = \"o\"\nprofile = \"default\"\n\
         jwks = { keys = [{ kty = \"EC\", crv = \"P-256\", x = \"AoT7VFTPJUk8DrnF7-RDkDFclzFultfbj70B9cPQgWU\", y = \"6YLTKpTWX-m_twErfy869w-Vp7wTa-BqPd9XhFyJkTA\" }] }\n",
    ))
    .unwrap();
    assert!(c.software_statements.issuer("i").is_some());
}

#[test]
fn software_statement_problems_name_their_keys() {
    let private = EC_KEY.replace("\"kid\"", "\"d\": \"AAAA\", \"kid\"");
    let p = problems(&statements_toml(&format!(
        "issuer = \"\"\nprofile = \"nope\"\nalgorithms = [\"HS256\"]\njwks = '{{\"keys\": [{private}]}}'\n\
         [[software_statements.issuers]]\nissuer = \"b\"\norganization = \"o\"\nprofile = \"partners\"\njwks_uri = \"http://b.example/jwks\"\n\
         [[software_statements.issuers]]\nissuer = \"c\"\norganization = \"o\"\nprofile = \"partners\"\nalgorithms = [\"RS256\"]\njwks = '{{\"keys\": [{EC_KEY}]}}'\n\
         [[software_statements.issuers]]\norganization = \"o\"\nprofile = \"partners\"\n"
    )));
    for key in [
        "software_statements.issuers[0].issuer",
        "software_statements.issuers[0].organization: missing",
        "software_statements.issuers[0].profile: \"nope\"",
        "software_statements.issuers[0].algorithms: \"HS256\"",
        "software_statements.issuers[0].jwks:",
        "software_statements.issuers[1].jwks_uri: \"http://b.example/jwks\" must use https",
        "software_statements.issuers[2].jwks: no key can verify",
        "software_statements.issuers[3].issuer: missing",
        "software_statements.issuers[3].jwks: missing",
    ] {
        assert!(
            p.iter().any(|m| m.starts_with(key)),
            "{key} not reported in {p:#?}"
        );
    }
    let p = problems(
        "[software_statements]\nenabled = true\nregistrations_per_minute_per_source = 0\n",
    );
    for key in [
        "software_statements.issuers: none configured",
        "software_statements.registrations_per_minute_per_source",
    ] {
        assert!(p.iter().any(|m| m.starts_with(key)), "{key} not in {p:?}");
    }
    let p = problems(&statements_toml(&format!(
        "issuer = \"a\"\norganization = \"o\"\nprofile = \"partners\"\njwks = '{{\"keys\": [{EC_KEY}]}}'\n\
         [[software_statements.issuers]]\nissuer = \"a\"\norganization = \"o\"\nprofile = \"partners\"\njwks = '{{\"keys\": [{EC_KEY}]}}'\n"
    )));
    assert!(
        p[0].starts_with("software_statements.issuers[1].issuer: \"a\" is already configured"),
        "{p:?}"
    );
}

#[test]
fn software_statement_issuer_jwks_uri() {
    let c = parse(&statements_toml(
        "issuer = \"i\"\norganization = \"o\"\nprofile = \"partners\"\njwks_uri = \"https://keys.partners.example/jwks.json\"\n",
    ))
    .unwrap();
    let trusted = c.software_statements.issuer("i").unwrap();
    assert!(
        matches!(&trusted.keys, IssuerKeys::JwksUri(u) if u == "https://keys.partners.example/jwks.json"),
        "{:?}",
        trusted.keys
    );
    // The algorithms cannot be checked against keys not fetched yet.
    parse(&statements_toml(
        "issuer = \"i\"\norganization = \"o\"\nprofile = \"partners\"\nalgorithms = [\"RS256\"]\njwks_uri = \"https://keys.partners.example/jwks.json\"\n",
    ))
    .unwrap();
    // A loopback literal is refused at start-up unless allowlisted; a name
    // cannot be vetted without a lookup, so it is left to the fetcher.
    let literal = "issuer = \"i\"\norganization = \"o\"\nprofile = \"partners\"\njwks_uri = \"https://127.0.0.1:8443/jwks\"\n";
    let p = problems(&statements_toml(literal));
    assert!(
        p.iter().any(|m| m.starts_with(
            "software_statements.issuers[0].jwks_uri: 127.0.0.1 is a loopback address; refused"
        ) && m.contains("fetch.allow_cidrs")),
        "{p:?}"
    );
    parse(&format!(
        "[fetch]\nallow_cidrs = [\"127.0.0.0/8\"]\n{}",
        statements_toml(literal)
    ))
    .unwrap();
    parse(&statements_toml(
        "issuer = \"i\"\norganization = \"o\"\nprofile = \"partners\"\njwks_uri = \"https://keys.internal.test/jwks\"\n",
    ))
    .unwrap();

    let cases = [
        (
            "jwks_uri = \"https://[::1]/jwks\"",
            "jwks_uri: [::1] is a loopback address",
        ),
        (
            "jwks_uri = \"https://localhost/jwks\"",
            "jwks_uri: localhost resolves to 127.0.0.1",
        ),
        (
            "jwks_uri = \"https://10.1.2.3/jwks\"",
            "jwks_uri: 10.1.2.3 is a private address",
        ),
        (
            "jwks_uri = \"http://keys.example/jwks\"",
            "jwks_uri: \"http://keys.example/jwks\" must use https",
        ),
        (
            "jwks_uri = \"keys.example/jwks\"",
            "jwks_uri: \"keys.example/jwks\" is not a URL",
        ),
        (
            "jwks_uri = \"https://keys.example/jwks#k\"",
            "jwks_uri: \"https://keys.example/jwks#k\" must not have a fragment",
        ),
        (
            "jwks_uri = \"https://me:s3cret@keys.example/jwks\"",
            "jwks_uri: must not contain a user name or password",
        ),
        (
            "jwks_uri = \"https://keys.example/jwks\"\njwks = '{\"keys\": []}'",
            "jwks_uri: set together with software_statements.issuers[0].jwks",
        ),
    ];
    for (keys, expected) in cases {
        let p = problems(&statements_toml(&format!(
            "issuer = \"i\"\norganization = \"o\"\nprofile = \"partners\"\n{keys}\n"
        )));
        let expected = format!("software_statements.issuers[0].{expected}");
        assert!(
            p.iter().any(|m| m.starts_with(&expected)),
            "{keys}: {expected:?} not in {p:#?}"
        );
        assert!(!p.join("\n").contains("s3cret"), "{p:?}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let e = parse("[server]\nlisten_addr = \"x\"").unwrap_err();
    assert!(e.to_string().contains("listen_addr"), "{e}");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let p = problems(
        "[server]\nlisten = \"nowhere\"\nissuer = \"http://as.example.com\"\n[server.tls]\ncert = \"/nonexistent.pem\"\n\
         [storage]\ndatabase_url = \"mysql://x\"\n[registration]\nclient_secret_lifetime = \"90 days\"\n[secrets]\nhash_key = \"short\"",
    );
    let joined = p.join("\n");
    for key in [
        "server.listen",
        "server.issuer",
        "server.tls.key",
        "storage.database_url",
        "registration.client_secret_lifetime",
        "secrets.hash_key",
    ] {
        assert!(joined.contains(key), "{key} missing from:\n{joined}");
    }
    assert!(!joined.contains("short"), "secret values are never echoed");
}

#[test]
fn issuer_rules() {
    for good in [
        "https://as.example.com",
        "https://as.example.com/t1",
        "http://127.0.0.1:8080",
        "http://localhost:9000",
        "http://[::1]:8080",
    ] {
        Issuer::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "http://as.example.com",
        "https://as.example.com/",
        "https://as.example.com?x=1",
        "https://as.example.com#f",
        "https://u@as.example.com",
        "ftp://as.example.com",
        "as.example.com",
        "https://AS.example.com",
    ] {
        assert!(Issuer::parse(bad).is_err(), "{bad} accepted");
    }
    assert_eq!(
        Issuer::parse("https://as.example.com/t1").unwrap().path(),
        "/t1"
    );
    assert_eq!(Issuer::parse("https://as.example.com").unwrap().path(), "");
}

#[test]
fn public_listener_needs_an_issuer() {
    assert!(problems("[server]\nlisten = \"0.0.0.0:8080\"")
        .join("")
        .contains("server.issuer: missing"));
}

#[test]
fn plain_http_issuer_only_on_loopback_listeners() {
    let p = problems("[server]\nlisten = \"0.0.0.0:8080\"\nissuer = \"http://127.0.0.1:8080\"");
    assert!(p.join("").contains("in clear"), "{p:?}");
    parse("[server]\nlisten = \"0.0.0.0:8080\"\nissuer = \"https://as.example.com\"").unwrap();
}

#[test]
fn postgres_url_selects_postgres() {
    let c = parse("[storage]\ndatabase_url = \"postgres://postgres@127.0.0.1/test\"").unwrap();
    assert!(matches!(c.storage, StorageConfig::Postgres { .. }));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("d").is_err());
    assert!(parse_duration("99999999999999999d").is_err());
}

#[test]
fn secrets_are_redacted_in_debug() {
    let c = parse("[secrets]\nhash_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"").unwrap();
    assert!(!format!("{c:?}").contains("AAAA"));
}

#[test]
fn token_and_lifecycle_keys_are_validated_by_name() {
    let c = parse("").unwrap();
    assert_eq!(c.tokens, TokensConfig::default());
    assert_eq!(c.lifecycle, LifecycleConfig::default());
    let p = problems(
        "[tokens]\naccess_token_lifetime = \"2d\"\nsigning_alg = \"HS256\"\nkey_rotation_interval = \"1h\"\nkey_publish_ahead = \"2h\"\n\
         [lifecycle]\nunused_client_expiry = \"soon\"\nsecret_rotation_overlap = \"31d\"\n",
    );
    for key in [
        "tokens.access_token_lifetime",
        "tokens.signing_alg",
        "tokens.key_publish_ahead",
        "lifecycle.unused_client_expiry",
        "lifecycle.secret_rotation_overlap",
    ] {
        assert!(
            p.iter().any(|m| m.starts_with(key)),
            "{key} not reported in {p:?}"
        );
    }
    let c =
        parse("[tokens]\nsigning_alg = \"RS256\"\n[lifecycle]\nunused_client_expiry = \"off\"\n")
            .unwrap();
    assert_eq!(c.tokens.signing_alg, "RS256");
    assert_eq!(c.lifecycle.unused_client_expiry, None);
}
