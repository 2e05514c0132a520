//! The exchange with an allowlisted loopback server: success, content
//! types, size caps, timeouts, redirects, statuses, per-host concurrency.

use crate::server::{Probe, Reply, Server};
use crate::{loopback_config, setup};
use charter_fetch::{FetchConfig, FetchError, Purpose};
use std::time::Duration;

const JWKS: &str = r#"{"keys":[]}"#;

fn url(server: &Server, path: &str) -> String {
    format!("http://jwks.test:{}{path}", server.port())
}

#[tokio::test]
async fn success_with_an_accepted_content_type() {
    let server = Server::start(
        Reply::new(200)
            .header("Content-Type", "application/jwk-set+json; charset=utf-8")
            .body(JWKS.as_bytes()),
    )
    .await;
    let s = setup(loopback_config());
    let doc = s
        .fetcher
        .get(&url(&server, "/jwks"), Purpose::JwkSet)
        .await
        .unwrap();
    assert_eq!(&doc.body[..], JWKS.as_bytes());
    assert_eq!(doc.content_type, "application/jwk-set+json; charset=utf-8");
    assert_eq!(server.paths(), ["/jwks"]);
    // An IP literal in an allowlisted range, and the mapped form of it.
    for host in ["127.0.0.1", "127.1", "[::ffff:127.0.0.1]"] {
        let url = format!("http://{host}:{}/x", server.port());
        if host.starts_with('[') {
            // The process may lack IPv6; only the vetting is asserted.
            s.fetcher.vet(&url).await.unwrap();
        } else {
            s.fetcher.get(&url, Purpose::JwkSet).await.unwrap();
        }
    }
    // `127.1` is `127.0.0.1` once parsed: the same URL, from the cache.
    let stats = s.fetcher.stats();
    assert_eq!((stats.fetched, stats.cache_hits), (2, 1));
    assert!(
        stats.refusals.is_empty() && stats.errors.is_empty(),
        "{stats:?}"
    );
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_refused() {
    for (content_type, purpose) in [
        (Some("text/html"), Purpose::JwkSet),
        (Some("application/jwk-set+json"), Purpose::SectorIdentifier),
        (Some("application/jsonp"), Purpose::MetadataDocument),
        (None, Purpose::JwkSet),
    ] {
        let mut reply = Reply::new(200).body(JWKS.as_bytes());
        if let Some(ct) = content_type {
            reply = reply.header("Content-Type", ct);
        }
        let server = Server::start(reply).await;
        let s = setup(loopback_config());
        let e = s
            .fetcher
            .get(&url(&server, "/"), purpose)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            FetchError::ContentType {
                host: "jwks.test".into(),
                found: content_type.map(str::to_owned),
                purpose
            }
        );
    }
}

#[tokio::test]
async fn body_over_the_cap_is_refused_while_streaming() {
    for purpose in [Purpose::JwkSet, Purpose::MetadataDocument] {
        let cap = purpose.cap();
        for content_length in [true, false] {
            let s = setup(loopback_config());
            // Exactly the cap is fine.
            let mut at_cap = Reply::json("").body(&vec![b' '; cap]);
            at_cap.content_length = content_length;
            let server = Server::start(at_cap).await;
            let doc = s.fetcher.get(&url(&server, "/"), purpose).await.unwrap();
            assert_eq!(doc.body.len(), cap);
            // One byte more is not, declared or not.
            let mut over = Reply::json("").body(&vec![b' '; cap + 1]);
            over.content_length = content_length;
            let server = Server::start(over).await;
            let e = s
                .fetcher
                .get(&url(&server, "/"), purpose)
                .await
                .unwrap_err();
            assert_eq!(
                e,
                FetchError::TooLarge {
                    host: "jwks.test".into(),
                    cap
                }
            );
            // Far more is refused just the same.
            let mut huge = Reply::json("").body(&vec![b' '; 4 * 1024 * 1024]);
            huge.content_length = content_length;
            let server = Server::start(huge).await;
            let e = s
                .fetcher
                .get(&url(&server, "/"), purpose)
                .await
                .unwrap_err();
            assert_eq!(e.reason(), "too_large");
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let mut hang = Reply::json(JWKS);
    hang.hang = true;
    let server = Server::start(hang).await;
    let s = setup(FetchConfig {
        connect_timeout: Duration::from_millis(200),
        timeout: Duration::from_millis(300),
        ..loopback_config()
    });
    let started = std::time::Instant::now();
    let e = s
        .fetcher
        .get(&url(&server, "/"), Purpose::JwkSet)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        FetchError::Timeout {
            host: "jwks.test".into(),
            after: Duration::from_millis(300)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.requests(), 1);
}

/// CIMD §4: a redirect is a failure, and its target is never contacted.
#[tokio::test]
async fn redirects_are_refused_and_not_followed() {
    let target = Probe::bind().await;
    let location = format!("http://127.0.0.1:{}/elsewhere", target.port());
    for status in [301, 302, 303, 307, 308] {
        let server = Server::start(Reply::new(status).header("Location", &location)).await;
        let s = setup(loopback_config());
        let e = s
            .fetcher
            .get(&url(&server, "/jwks"), Purpose::JwkSet)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            FetchError::Redirect {
                host: "jwks.test".into(),
                status
            }
        );
        assert_eq!(server.requests(), 1);
    }
    target.assert_untouched().await;
}

/// CIMD §4.1: only 200 is success.
#[tokio::test]
async fn statuses_other_than_200_are_refused() {
    for status in [201, 204, 400, 404, 500, 503] {
        let reply = if status == 204 {
            Reply::new(204)
        } else {
            Reply {
                status,
                ..Reply::json(JWKS)
            }
        };
        let server = Server::start(reply).await;
        let s = setup(loopback_config());
        let e = s
            .fetcher
            .get(&url(&server, "/"), Purpose::JwkSet)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            FetchError::Status {
                host: "jwks.test".into(),
                code: status
            }
        );
        assert_eq!(
            e.to_string(),
            format!("jwks.test answered with status {status}; expected 200")
        );
    }
}

/// Eight concurrent fetches to one host with a limit of two: the server
/// never sees more than two at once, and does see two.
#[tokio::test]
async fn concurrency_is_limited_per_host() {
    let mut reply = Reply::json(JWKS);
    reply.pair_up = Some(8);
    reply.hold = Some(Duration::from_millis(50));
    let server = Server::start(reply).await;
    let s = setup(FetchConfig {
        max_concurrent_per_host: 2,
        ..loopback_config()
    });
    let fetches = (0..8).map(|i| {
        let fetcher = s.fetcher.clone();
        // Distinct URLs, so no fetch is answered from the cache.
        let url = url(&server, &format!("/jwks/{i}"));
        tokio::spawn(async move { fetcher.get(&url, Purpose::JwkSet).await })
    });
    for fetch in fetches.collect::<Vec<_>>() {
        fetch.await.unwrap().unwrap();
    }
    assert_eq!(server.requests(), 8);
    assert_eq!(server.max_in_flight(), 2);
}
