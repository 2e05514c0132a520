//! URL and address vetting without any network: the static resolver
//! answers every lookup and records it.

use super::*;
use crate::resolve::StaticResolver;

fn policy(config: FetchConfig) -> Policy {
    Policy::new(&config)
}

fn loopback_allowed() -> FetchConfig {
    FetchConfig {
        allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        allow_http: true,
        ..FetchConfig::default()
    }
}

/// `Ok(())` or the refusal's reason.
#[track_caller]
fn check(policy: &Policy, url: &str, expected: Result<(), &str>) {
    let got = policy.check_url(url).map(|_| ()).map_err(|e| e.reason());
    assert_eq!(got, expected, "{url}");
}

#[test]
fn every_loopback_spelling_is_refused_by_default() {
    let p = policy(FetchConfig::default());
    for url in [
        "https://127.0.0.1/jwks",
        "https://127.1/jwks",
        "https://127.0.1/jwks",
        "https://2130706433/jwks",
        "https://0x7f000001/jwks",
        "https://0x7f.0.0.1/jwks",
        "https://0177.0.0.1/jwks",
        "https://017700000001/jwks",
        "https://127.000.000.001/jwks",
        "https://localhost/jwks",
        "https://LOCALHOST./jwks",
        "https://api.localhost/jwks",
        "https://[::1]/jwks",
        "https://[0:0:0:0:0:0:0:1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://[::ffff:7f00:1]/jwks",
        "https://[::127.0.0.1]/jwks",
        "https://[64:ff9b::127.0.0.1]/jwks",
        "https://[2002:7f00:1::1]/jwks",
        "https://127.0.0.1:8443/jwks",
    ] {
        check(&p, url, Err("non_global_address"));
    }
}

#[test]
fn odd_spellings_reach_the_classifier_as_the_address_they_mean() {
    let p = policy(FetchConfig::default());
    for (url, addr) in [
        ("https://127.1/", "127.0.0.1"),
        ("https://2130706433/", "127.0.0.1"),
        ("https://0x7f000001/", "127.0.0.1"),
        ("https://0177.0.0.1/", "127.0.0.1"),
        ("https://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
        ("https://2852039166/", "169.254.169.254"),
        ("https://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
        ("https://0/", "0.0.0.0"),
    ] {
        match p.check_url(url) {
            Err(FetchError::NonGlobalAddress { addr: got, .. }) => {
                assert_eq!(got, addr.parse::<IpAddr>().unwrap(), "{url}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn private_metadata_and_other_literals_are_refused() {
    let p = policy(FetchConfig::default());
    for url in [
        "https://10.0.0.1/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",
        "https://0.0.0.0/",
        "https://255.255.255.255/",
        "https://224.0.0.1/",
        "https://192.0.2.1/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[fec0::1]/",
        "https://[ff02::1]/",
        "https://[::]/",
        "https://[2001:db8::1]/",
    ] {
        check(&p, url, Err("non_global_address"));
    }
    check(&p, "https://8.8.8.8/", Ok(()));
    check(&p, "https://[2606:4700:4700::1111]/", Ok(()));
    check(&p, "https://jwks.example/keys", Ok(()));
}

#[test]
fn scheme_and_userinfo() {
    let p = policy(FetchConfig::default());
    check(&p, "http://jwks.example/", Err("not_https"));
    check(&p, "http://8.8.8.8/", Err("not_https"));
    check(&p, "ftp://jwks.example/", Err("not_https"));
    check(&p, "file:///etc/passwd", Err("not_https"));
    check(&p, "data:application/json,{}", Err("not_https"));
    check(&p, "https://user@jwks.example/", Err("userinfo"));
    check(&p, "https://user:pw@jwks.example/", Err("userinfo"));
    check(&p, "https://:pw@jwks.example/", Err("userinfo"));
    check(&p, "jwks.example/keys", Err("invalid_url"));
    check(&p, "https://", Err("invalid_url"));
    check(&p, "https://jwks.example:99999/", Err("invalid_url"));
    // Any port is fine.
    check(&p, "https://jwks.example:8443/", Ok(()));
}

#[test]
fn http_needs_allow_http_and_an_allowlisted_host() {
    // allow_http alone allows nothing.
    let p = policy(FetchConfig {
        allow_http: true,
        ..FetchConfig::default()
    });
    check(&p, "http://jwks.example/", Err("not_https"));
    check(&p, "http://8.8.8.8/", Err("not_https"));
    check(&p, "http://127.0.0.1/", Err("non_global_address"));

    let p = policy(loopback_allowed());
    check(&p, "http://127.0.0.1:8080/", Ok(()));
    check(&p, "http://127.1:8080/", Ok(()));
    check(&p, "http://[::ffff:127.0.0.1]/", Ok(()));
    check(&p, "http://8.8.8.8/", Err("not_https"));
    check(&p, "http://10.0.0.1/", Err("non_global_address"));
    // `localhost` is both 127.0.0.1 and ::1; only the first is allowed.
    check(&p, "http://localhost/", Err("non_global_address"));
    // A name is decided after resolution.
    check(&p, "http://jwks.test/", Ok(()));

    let p = policy(FetchConfig {
        allow_hosts: vec!["Internal.Example.".into(), "localhost".into()],
        allow_http: true,
        ..FetchConfig::default()
    });
    check(&p, "http://internal.example/", Ok(()));
    check(&p, "http://localhost:9000/", Ok(()));
    check(&p, "http://other.example/", Err("not_https"));
}

#[test]
fn allow_cidrs_cover_ipv4_mapped_forms() {
    let p = policy(FetchConfig {
        allow_cidrs: vec!["10.1.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..FetchConfig::default()
    });
    check(&p, "https://10.1.2.3/", Ok(()));
    check(&p, "https://[::ffff:10.1.2.3]/", Ok(()));
    check(&p, "https://10.2.0.1/", Err("non_global_address"));
    check(&p, "https://[fd00::1]/", Ok(()));
    check(&p, "https://[fc00::1]/", Err("non_global_address"));
}

fn resolver() -> StaticResolver {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    StaticResolver::new()
        .with(
            "jwks.example",
            &[ip("93.184.216.34"), ip("2606:2800:220:1::1")],
        )
        .with("evil.test", &[ip("10.0.0.1")])
        .with("metadata.test", &[ip("169.254.169.254")])
        .with("mixed.test", &[ip("93.184.216.34"), ip("127.0.0.1")])
        .with("mapped.test", &[ip("::ffff:127.0.0.1")])
        .with("jwks.test", &[ip("127.0.0.1")])
        .with("empty.test", &[])
}

async fn vet(p: &Policy, r: &StaticResolver, url: &str) -> Result<(), FetchError> {
    p.vet(r, url).await.map(|_| ())
}

#[tokio::test]
async fn names_are_vetted_on_every_resolved_address() {
    let p = policy(FetchConfig::default());
    let r = resolver();
    assert_eq!(vet(&p, &r, "https://jwks.example/k").await, Ok(()));
    assert_eq!(
        vet(&p, &r, "https://evil.test/k")
            .await
            .unwrap_err()
            .to_string(),
        "evil.test resolves to 10.0.0.1, a private address; refused"
    );
    assert_eq!(
        vet(&p, &r, "https://metadata.test/k")
            .await
            .unwrap_err()
            .to_string(),
        "metadata.test resolves to 169.254.169.254, a link-local address; refused"
    );
    // One bad address among good ones is enough to refuse.
    assert_eq!(
        vet(&p, &r, "https://mixed.test/k")
            .await
            .unwrap_err()
            .reason(),
        "non_global_address"
    );
    assert_eq!(
        vet(&p, &r, "https://mapped.test/k")
            .await
            .unwrap_err()
            .to_string(),
        "mapped.test resolves to ::ffff:127.0.0.1, a loopback address; refused"
    );
    assert_eq!(
        vet(&p, &r, "https://empty.test/k")
            .await
            .unwrap_err()
            .reason(),
        "no_addresses"
    );
    assert_eq!(
        vet(&p, &r, "https://unknown.test/k")
            .await
            .unwrap_err()
            .to_string(),
        "unknown.test could not be resolved"
    );
}

#[tokio::test]
async fn localhost_is_never_sent_to_the_resolver() {
    let p = policy(FetchConfig::default());
    let r = resolver();
    for url in [
        "https://localhost/",
        "https://localhost./",
        "https://a.b.localhost/",
    ] {
        assert_eq!(
            vet(&p, &r, url).await.unwrap_err().reason(),
            "non_global_address",
            "{url}"
        );
    }
    // The resolver saw none of them, and no literal either.
    vet(&p, &r, "https://127.1/").await.unwrap_err();
    vet(&p, &r, "https://[::1]/").await.unwrap_err();
    assert!(r.calls().is_empty(), "{:?}", r.calls());
}

#[tokio::test]
async fn allowlists() {
    let r = resolver();
    // A host on allow_hosts may resolve to anything.
    let p = policy(FetchConfig {
        allow_hosts: vec!["evil.test".into()],
        ..FetchConfig::default()
    });
    assert_eq!(vet(&p, &r, "https://evil.test/").await, Ok(()));
    assert!(vet(&p, &r, "https://metadata.test/").await.is_err());

    // An address in allow_cidrs is allowed for any name.
    let p = policy(loopback_allowed());
    assert_eq!(vet(&p, &r, "http://jwks.test/").await, Ok(()));
    assert_eq!(vet(&p, &r, "https://mapped.test/").await, Ok(()));
    assert_eq!(vet(&p, &r, "https://mixed.test/").await, Ok(()));
    // Over http every address must be allowlisted, not merely global.
    assert_eq!(
        vet(&p, &r, "http://mixed.test/").await.unwrap_err(),
        FetchError::NotHttps {
            url: "http://mixed.test/".into()
        }
    );
    assert_eq!(
        vet(&p, &r, "https://evil.test/")
            .await
            .unwrap_err()
            .reason(),
        "non_global_address"
    );
}
