//! Refusals before any connection: every loopback spelling, private and
//! metadata names, schemes, userinfo, and DNS rebinding.

use crate::server::{Probe, Reply, Server};
use crate::{ip, loopback_config, setup};
use async_trait::async_trait;
use charter_fetch::{
    AddressClass, FetchConfig, FetchError, Fetcher, Purpose, Resolve, ResolveError,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Issue 6: loopback in every spelling is refused without an allowlist,
/// by `get` and by `vet`, and nothing connects or resolves.
#[tokio::test]
async fn every_loopback_spelling_is_refused_without_connecting() {
    let probe = Probe::bind().await;
    let port = probe.port();
    let s = setup(FetchConfig::default());
    let hosts = [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0x7F.1",
        "0177.0.0.1",
        "0177.0.0.01",
        "017700000001",
        "localhost",
        "LocalHost.",
        "jwks.localhost",
        "[::1]",
        "[0::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
    ];
    for host in hosts {
        let url = format!("https://{host}:{port}/jwks");
        for result in [
            s.fetcher.get(&url, Purpose::JwkSet).await.map(|_| ()),
            s.fetcher.vet(&url).await,
        ] {
            match result {
                Err(FetchError::NonGlobalAddress { class, .. }) => {
                    assert_eq!(class, AddressClass::Loopback, "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // Over http it is refused too (no allow_http).
        let url = format!("http://{host}:{port}/jwks");
        let e = s.fetcher.get(&url, Purpose::JwkSet).await.unwrap_err();
        assert_eq!(e.reason(), "not_https", "{url}");
    }
    probe.assert_untouched().await;
    assert!(s.resolver.calls().is_empty(), "{:?}", s.resolver.calls());
    let stats = s.fetcher.stats();
    assert_eq!(stats.sent, 0);
    assert_eq!(
        stats.refusals.get("non_global_address"),
        Some(&(2 * hosts.len() as u64))
    );
    assert_eq!(stats.refusals.get("not_https"), Some(&(hosts.len() as u64)));
}

/// The probe has teeth: a fetch that does connect is seen.
#[tokio::test]
async fn the_probe_sees_a_connection() {
    let probe = Probe::bind().await;
    let s = setup(FetchConfig {
        timeout: std::time::Duration::from_millis(200),
        connect_timeout: std::time::Duration::from_millis(200),
        ..loopback_config()
    });
    let url = format!("http://127.0.0.1:{}/", probe.port());
    // The probe never answers, so the fetch times out after connecting.
    let e = s.fetcher.get(&url, Purpose::JwkSet).await.unwrap_err();
    assert_eq!(e.reason(), "timeout");
    assert!(probe.touched().await);
}

/// A name resolving to a private or metadata address is refused after
/// resolution and before connecting; the message is fit for the client.
#[tokio::test]
async fn names_resolving_to_non_global_addresses_are_refused() {
    let s = setup(FetchConfig::default());
    for (url, message) in [
        (
            "https://evil.test/jwks",
            "evil.test resolves to 10.0.0.1, a private address; refused",
        ),
        (
            "https://metadata.test/latest/meta-data/",
            "metadata.test resolves to 169.254.169.254, a link-local address; refused",
        ),
        (
            "https://mapped.test/jwks",
            "mapped.test resolves to ::ffff:127.0.0.1, a loopback address; refused",
        ),
    ] {
        let e = s.fetcher.vet(url).await.unwrap_err();
        assert_eq!(e.to_string(), message);
        // `get` hands the URL to the HTTP client, whose only resolver
        // vets the same way: the refusal comes back as itself.
        let e = s.fetcher.get(url, Purpose::JwkSet).await.unwrap_err();
        assert_eq!(e.to_string(), message);
    }
    // One bad address among allowed ones is enough, even with loopback
    // allowlisted.
    let s = setup(loopback_config());
    let e = s.fetcher.get("http://mixed.test/", Purpose::JwkSet).await;
    assert!(
        matches!(e, Err(FetchError::NonGlobalAddress { addr, .. }) if addr == ip("192.168.1.1")),
        "{e:?}"
    );
}

#[tokio::test]
async fn scheme_userinfo_and_unresolvable() {
    let s = setup(FetchConfig::default());
    for (url, reason) in [
        ("http://jwks.example/", "not_https"),
        ("ftp://jwks.example/", "not_https"),
        ("file:///etc/passwd", "not_https"),
        ("https://user:pw@jwks.example/", "userinfo"),
        ("not a url", "invalid_url"),
        ("https://unknown.test/", "resolve"),
    ] {
        let e = s.fetcher.get(url, Purpose::JwkSet).await.unwrap_err();
        assert_eq!(e.reason(), reason, "{url}");
    }
    assert_eq!(s.resolver.calls(), ["unknown.test"]);
}

/// A resolver that answers loopback the first time and a private address
/// afterwards: a DNS rebinding attack.
struct Rebinding(AtomicUsize);

#[async_trait]
impl Resolve for Rebinding {
    async fn resolve(&self, _: &str) -> Result<Vec<IpAddr>, ResolveError> {
        Ok(match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => vec![ip("127.0.0.1")],
            _ => vec![ip("10.0.0.1")],
        })
    }
}

/// The fetch vets the addresses it connects to, not those an earlier
/// check saw.
#[tokio::test]
async fn rebinding_after_vet_is_refused_at_connect() {
    let server = Server::start(Reply::json("{}")).await;
    let resolver = Arc::new(Rebinding(AtomicUsize::new(0)));
    let fetcher = Fetcher::new(loopback_config(), resolver.clone()).unwrap();
    let url = format!("http://rebind.test:{}/", server.port());
    fetcher.vet(&url).await.unwrap();
    let e = fetcher.get(&url, Purpose::JwkSet).await.unwrap_err();
    assert!(
        matches!(e, FetchError::NonGlobalAddress { addr, .. } if addr == ip("10.0.0.1")),
        "{e:?}"
    );
    assert_eq!(resolver.0.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests(), 0);
}

/// With `allow_http` but no allowlist entry for the host, http stays off.
#[tokio::test]
async fn http_needs_an_allowlisted_host() {
    let server = Server::start(Reply::json("{}")).await;
    let s = setup(FetchConfig {
        allow_http: true,
        ..FetchConfig::default()
    });
    let url = format!("http://jwks.test:{}/", server.port());
    let e = s.fetcher.get(&url, Purpose::JwkSet).await.unwrap_err();
    assert_eq!(e, FetchError::NotHttps { url });
    assert_eq!(server.requests(), 0);

    // allow_hosts works for names, whatever they resolve to.
    let s = setup(FetchConfig {
        allow_http: true,
        allow_hosts: vec!["jwks.test".into()],
        ..FetchConfig::default()
    });
    let url = format!("http://jwks.test:{}/", server.port());
    s.fetcher.get(&url, Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 1);
}

/// `get_public` ignores the allowlists: an allowlisted name or range that
/// is not global is refused without a connection, over http and https.
#[tokio::test]
async fn public_fetches_ignore_the_allowlists() {
    let server = Server::start(Reply::json("{}")).await;
    let s = setup(FetchConfig {
        allow_http: true,
        allow_hosts: vec!["jwks.test".into()],
        allow_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        ..FetchConfig::default()
    });
    let url = format!("http://jwks.test:{}/", server.port());
    s.fetcher.get(&url, Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 1);
    let e = s
        .fetcher
        .get_public(&url, Purpose::MetadataDocument)
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::NotHttps { url });
    for url in [
        format!("https://jwks.test:{}/doc.json", server.port()),
        format!("https://127.0.0.1:{}/doc.json", server.port()),
    ] {
        let e = s
            .fetcher
            .get_public(&url, Purpose::MetadataDocument)
            .await
            .unwrap_err();
        assert!(
            matches!(e, FetchError::NonGlobalAddress { .. }),
            "{url}: {e:?}"
        );
    }
    assert_eq!(server.requests(), 1, "nothing was contacted");
}
