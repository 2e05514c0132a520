//! Metadata that names URLs Charter will fetch (`jwks_uri`,
//! `sector_identifier_uri`): checked at registration, through the one
//! SSRF-safe fetcher, before anything is stored.
//!
//! A URL that names a non-global address, literally or by a name that
//! resolves to one, is refused at once with `invalid_client_metadata`
//! (issue 6: fail early); nothing is fetched from it. A profile may narrow
//! the hosts such URLs may name (`fetch_hosts`).

use charter_fetch::{Fetcher, Purpose};
use charter_policy::Profile;
use charter_protocol::{ClientMetadata, Error as ProtocolError};
use serde_json::Value;

use crate::Error;

fn refused(member: &str, why: impl std::fmt::Display) -> Error {
    ProtocolError::invalid_metadata(format!("{member}: {why}")).into()
}

/// The host of an https URL (already validated by the protocol layer).
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
}

/// Whether `host` matches one of the profile's `fetch_hosts` patterns: an
/// exact name, or `*.example.com` for any name below `example.com`.
fn host_allowed(profile: &Profile, host: &str) -> bool {
    profile.fetch_hosts.as_ref().is_none_or(|patterns| {
        patterns.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => p.eq_ignore_ascii_case(host),
        })
    })
}

/// Checks every URL of `metadata` that the server would fetch: the
/// profile's host restriction, the address vetting of the fetcher, and for
/// `sector_identifier_uri` the document itself (OIDC DCR §5: a JSON array
/// holding every registered redirect URI).
pub(crate) async fn check_remote_metadata(
    fetcher: &Fetcher,
    profile: &Profile,
    metadata: &ClientMetadata,
) -> Result<(), Error> {
    for (member, url) in [
        ("jwks_uri", &metadata.jwks_uri),
        ("sector_identifier_uri", &metadata.sector_identifier_uri),
    ] {
        let Some(url) = url else { continue };
        let host = host_of(url).ok_or_else(|| refused(member, "must be an absolute https URL"))?;
        if !host_allowed(profile, &host) {
            return Err(refused(
                member,
                format!("the host {host} is not one the client's profile allows (fetch_hosts)"),
            ));
        }
        fetcher.vet(url).await.map_err(|e| refused(member, e))?;
    }
    // Issue 6: registration may check reachability, per profile.
    if let (Some(url), true) = (&metadata.jwks_uri, profile.check_jwks_uri) {
        let fetched = fetcher
            .get(url, Purpose::JwkSet)
            .await
            .map_err(|e| refused("jwks_uri", e))?;
        let usable = serde_json::from_slice::<Value>(&fetched.body)
            .ok()
            .and_then(|set| set.get("keys").and_then(Value::as_array).cloned())
            .is_some_and(|keys| {
                keys.iter()
                    .any(|k| charter_jose::PublicKey::from_jwk(k).is_ok())
            });
        if !usable {
            return Err(refused(
                "jwks_uri",
                "the document holds no key this server can use (a JSON JWK Set with an ES256, PS256 or RS256 signing key is required by the client's profile)",
            ));
        }
    }
    if let Some(url) = &metadata.sector_identifier_uri {
        // Past the cache (at most once per `fetch.refetch_interval` per
        // URL): a client that has just added a redirect URI to its
        // document and registers or updates must be checked against that
        // document, not a copy cached for as long as its max-age.
        let fetched = fetcher
            .get_fresh(url, Purpose::SectorIdentifier)
            .await
            .map_err(|e| refused("sector_identifier_uri", e))?;
        let listed: Vec<String> = match serde_json::from_slice::<Value>(&fetched.body) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => {
                return Err(refused(
                    "sector_identifier_uri",
                    "the document must be a JSON array of redirect URIs (OIDC DCR section 5)",
                ))
            }
        };
        if let Some(missing) = metadata
            .redirect_uris
            .iter()
            .find(|r| !listed.iter().any(|l| l == *r))
        {
            return Err(refused(
                "sector_identifier_uri",
                format!(
                    "the document does not list the redirect URI {missing} (OIDC DCR section 5)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_host_patterns() {
        let mut profile = charter_policy::Policy::builtin(
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(3600),
        )
        .profiles
        .remove("default")
        .expect("default profile");
        assert!(host_allowed(&profile, "anything.example"));
        profile.fetch_hosts = Some(vec!["keys.example.com".into(), "*.partners.example".into()]);
        for (host, allowed) in [
            ("keys.example.com", true),
            ("KEYS.example.com", true),
            ("evil.example.com", false),
            ("a.partners.example", true),
            ("a.b.partners.example", true),
            ("partners.example", false),
            ("xpartners.example", false),
        ] {
            assert_eq!(
                host_allowed(&profile, &host.to_ascii_lowercase()),
                allowed,
                "{host}"
            );
        }
    }
}
