//! The cache, the negative cache and forced re-fetches, with time moved by
//! an injected clock instead of sleeping.

use crate::server::{Reply, Server};
use crate::{loopback_config, setup};
use charter_fetch::{FetchConfig, Purpose};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

fn url(server: &Server) -> String {
    format!("http://jwks.test:{}/jwks", server.port())
}

#[tokio::test]
async fn cached_within_max_age_and_fetched_again_after() {
    let server =
        Server::start(Reply::json("{}").header("Cache-Control", "public, max-age=120")).await;
    let s = setup(loopback_config());
    let first = s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
    assert_eq!(first.expires_at, first.fetched_at + 120 * SEC);
    s.clock.advance(119 * SEC);
    let second = s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
    assert_eq!(second, first);
    assert_eq!(server.requests(), 1);
    // Another purpose is another entry.
    s.fetcher
        .get(&url(&server), Purpose::SoftwareStatementKeys)
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);

    s.clock.advance(SEC);
    let third = s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 3);
    assert_eq!(third.fetched_at, first.fetched_at + 120 * SEC);
    let stats = s.fetcher.stats();
    assert_eq!((stats.requests, stats.cache_hits, stats.fetched), (4, 1, 3));
    assert_eq!(stats.cache_entries, 2);
}

#[tokio::test]
async fn ttl_is_clamped_to_the_configured_bounds() {
    for (cache_control, ttl) in [
        (Some("no-store"), 60),
        (Some("no-cache"), 60),
        (Some("max-age=5"), 60),
        (None, 60),
        (Some("max-age=31536000"), 86_400),
    ] {
        let mut reply = Reply::json("{}");
        if let Some(cc) = cache_control {
            reply = reply.header("Cache-Control", cc);
        }
        let server = Server::start(reply).await;
        let s = setup(loopback_config());
        let doc = s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
        assert_eq!(
            doc.expires_at,
            doc.fetched_at + ttl * SEC,
            "{cache_control:?}"
        );
        s.clock.advance((ttl - 1) * SEC);
        s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
        assert_eq!(server.requests(), 1, "{cache_control:?}");
        s.clock.advance(SEC);
        s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
        assert_eq!(server.requests(), 2, "{cache_control:?}");
    }
}

#[tokio::test]
async fn failures_are_remembered_for_the_negative_ttl() {
    let server = Server::start(Reply::new(500)).await;
    let s = setup(loopback_config());
    let first = s
        .fetcher
        .get(&url(&server), Purpose::JwkSet)
        .await
        .unwrap_err();
    let again = s
        .fetcher
        .get(&url(&server), Purpose::JwkSet)
        .await
        .unwrap_err();
    assert_eq!(again, first);
    s.clock.advance(29 * SEC);
    s.fetcher
        .get(&url(&server), Purpose::JwkSet)
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
    s.clock.advance(SEC);
    s.fetcher
        .get(&url(&server), Purpose::JwkSet)
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 2);
    let stats = s.fetcher.stats();
    assert_eq!(stats.negative_hits, 2);
    // Counted once per fetch, not per answer from the negative cache.
    assert_eq!(stats.errors.get("status"), Some(&2));
}

/// CIMD §4.4: errors are not cached for metadata documents, and a failed
/// fetch drops the good copy too.
#[tokio::test]
async fn metadata_document_failures_are_not_cached() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let server = Server::start_with(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::json("{}").header("Cache-Control", "max-age=600"),
        _ => Reply::new(500),
    })
    .await;
    let s = setup(loopback_config());
    s.fetcher
        .get(&url(&server), Purpose::MetadataDocument)
        .await
        .unwrap();
    // The forced re-fetch fails: nothing is cached for the URL any more.
    s.fetcher
        .get_fresh(&url(&server), Purpose::MetadataDocument)
        .await
        .unwrap_err();
    for _ in 0..2 {
        s.fetcher
            .get(&url(&server), Purpose::MetadataDocument)
            .await
            .unwrap_err();
    }
    assert_eq!(server.requests(), 4);
    // With a zero negative TTL, no purpose caches failures.
    let s = setup(FetchConfig {
        negative_ttl: Duration::ZERO,
        ..loopback_config()
    });
    for _ in 0..2 {
        s.fetcher
            .get(&url(&server), Purpose::JwkSet)
            .await
            .unwrap_err();
    }
    assert_eq!(server.requests(), 6);
}

/// A forced re-fetch (an unknown `kid`) bypasses the cache at most once
/// per `refetch_interval` per URL.
#[tokio::test]
async fn forced_refetch_is_rate_limited() {
    let server =
        Server::start_with(|_| Reply::json("{}").header("Cache-Control", "max-age=3600")).await;
    let s = setup(loopback_config());
    s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
    s.fetcher
        .get_fresh(&url(&server), Purpose::JwkSet)
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
    // Within 30 s: served from the cache.
    s.clock.advance(29 * SEC);
    s.fetcher
        .get_fresh(&url(&server), Purpose::JwkSet)
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
    // The refreshed copy replaced the old one in the cache.
    s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 2);
    s.clock.advance(SEC);
    s.fetcher
        .get_fresh(&url(&server), Purpose::JwkSet)
        .await
        .unwrap();
    assert_eq!(server.requests(), 3);
    let stats = s.fetcher.stats();
    assert_eq!(stats.fresh_rate_limited, 1);
    assert_eq!(stats.cache_hits, 2);
}

/// A failed re-fetch of a JWK Set keeps the good copy: a client's
/// `jwks_uri` being down for a moment does not lock it out.
#[tokio::test]
async fn failed_forced_refetch_keeps_the_good_copy() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let server = Server::start_with(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::json("{}").header("Cache-Control", "max-age=600"),
        _ => Reply::new(503),
    })
    .await;
    let s = setup(loopback_config());
    let good = s.fetcher.get(&url(&server), Purpose::JwkSet).await.unwrap();
    let e = s
        .fetcher
        .get_fresh(&url(&server), Purpose::JwkSet)
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "status");
    assert_eq!(
        s.fetcher.get(&url(&server), Purpose::JwkSet).await,
        Ok(good)
    );
    // The fragment is never sent and is not part of the cache key.
    let with_fragment = format!("{}#key-1", url(&server));
    s.fetcher
        .get(&with_fragment, Purpose::JwkSet)
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn forget_and_eviction() {
    let server = Server::start(Reply::json("{}").header("Cache-Control", "max-age=3600")).await;
    let s = setup(FetchConfig {
        max_cache_entries: 2,
        ..loopback_config()
    });
    let at = |n: u8| format!("http://jwks.test:{}/{n}", server.port());
    for n in [1, 2, 3] {
        s.fetcher.get(&at(n), Purpose::JwkSet).await.unwrap();
    }
    assert_eq!(s.fetcher.stats().cache_entries, 2);
    // 1 was evicted (oldest), 3 is cached.
    s.fetcher.get(&at(3), Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 3);
    s.fetcher.get(&at(1), Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 4);
    // The caller found 1 invalid and drops it.
    s.fetcher.forget(&at(1), Purpose::JwkSet);
    s.fetcher.get(&at(1), Purpose::JwkSet).await.unwrap();
    assert_eq!(server.requests(), 5);
}
