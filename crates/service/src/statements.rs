//! Software statements at registration and update (RFC 7591 §2.3): the
//! trusted issuer a statement names, that issuer's keys, verification, and
//! the organization the issuer's clients belong to.
//!
//! The protocol layer parses and verifies (`charter_protocol::
//! parse_software_statement`, `UnverifiedStatement::verify`); this module
//! supplies what that needs from configuration, the key source and the
//! store. Which organization and profile then bind the client is decided
//! with the other credentials in `registration.rs`.
//!
//! An issuer's keys are configured inline or published at its `jwks_uri`
//! ([`ConfiguredKeys`] serves both). When the keys at a `jwks_uri` cannot
//! be had — the fetcher refuses the address, the host is unreachable, it
//! answers 404 or with something that is not a JWK Set — the statement
//! cannot be verified, and RFC 7591 §3.2.2 has one code for that:
//! `invalid_software_statement`, its description naming the fetch problem.
//! Not `unapproved_software_statement` (the issuer *is* approved) and not a
//! 5xx: nothing is wrong with this server, RFC 7591 defines no temporary
//! error, and the fetcher's negative cache (`fetch.negative_ttl`) already
//! stops clients that retry from hammering the issuer. The operator learns
//! of it from a warning in the log.

use async_trait::async_trait;
use charter_config::{IssuerKeys, SoftwareStatementsConfig, TrustedIssuer};
use charter_fetch::{Fetcher, Purpose};
use charter_jose::PublicKey;
use charter_protocol::{
    parse_software_statement, Error as ProtocolError, ErrorCode, SoftwareStatement, StatementCheck,
    UnverifiedStatement,
};
use charter_store::{ClientRecord, Organization};
use serde_json::{Map, Value};
use std::sync::Arc;

use crate::{Error, Registrar};

/// Where the public keys of a trusted issuer come from: the one place a
/// statement's verification keys are looked up.
///
/// The server installs [`ConfiguredKeys`] (inline keys, or a `jwks_uri`
/// through the fetcher) with [`Registrar::with_software_statements`] in
/// `charter::start_with`; [`InlineKeys`] serves inline keys only.
#[async_trait]
pub trait StatementKeys: Send + Sync {
    /// The keys `issuer` signs statements with; `kid` is the statement's
    /// key id, for sources that can refresh on an unknown one. A key
    /// source that fails refuses the statement (`invalid_software_statement`
    /// naming the problem): it cannot be verified.
    async fn keys(
        &self,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
    ) -> Result<Vec<PublicKey>, Error>;
}

/// Keys given in the configuration (`[[software_statements.issuers]] jwks`)
/// only; an issuer with a `jwks_uri` cannot be verified without a fetcher.
pub struct InlineKeys;

#[async_trait]
impl StatementKeys for InlineKeys {
    async fn keys(
        &self,
        issuer: &TrustedIssuer,
        _kid: Option<&str>,
    ) -> Result<Vec<PublicKey>, Error> {
        match &issuer.keys {
            IssuerKeys::Inline(keys) => Ok(keys.clone()),
            IssuerKeys::JwksUri(_) => Err(invalid(format!(
                "the keys of issuer {:?} are published at a jwks_uri, and this server fetches none",
                issuer.issuer
            ))),
        }
    }
}

/// Every issuer's keys as configured: inline ones as they are, and the JWK
/// Set at a `jwks_uri` through the one SSRF-safe fetcher
/// ([`Purpose::SoftwareStatementKeys`]: vetted addresses only, no
/// redirects, 64 KiB, cached per `Cache-Control` within the `[fetch]`
/// bounds, failures remembered for `fetch.negative_ttl`).
///
/// Issuer key rotation: when the statement's `kid` names no key of the
/// cached set (or the cached document is not a JWK Set), the set is fetched
/// once more past the cache (`Fetcher::get_fresh`, at most once per
/// `fetch.refetch_interval` per URL, so statements with made-up `kid`s
/// cannot make the server hammer the issuer). A known `kid` whose signature
/// fails, or a statement without `kid`, is never a reason to re-fetch.
pub struct ConfiguredKeys {
    fetcher: Fetcher,
}

impl ConfiguredKeys {
    pub fn new(fetcher: Fetcher) -> Self {
        Self { fetcher }
    }

    /// The public signature keys of the set at `url`; keys this server
    /// cannot use (other types, encryption keys) are skipped (RFC 7517 §5).
    async fn fetch(&self, url: &str, fresh: bool) -> Result<Vec<PublicKey>, Fetch> {
        let purpose = Purpose::SoftwareStatementKeys;
        let fetched = if fresh {
            self.fetcher.get_fresh(url, purpose).await
        } else {
            self.fetcher.get(url, purpose).await
        }
        .map_err(Fetch::Failed)?;
        match serde_json::from_slice::<Value>(&fetched.body) {
            Ok(set) => match set.get("keys").and_then(Value::as_array) {
                Some(keys) => Ok(keys
                    .iter()
                    .filter_map(|k| PublicKey::from_jwk(k).ok())
                    .collect()),
                None => Err(Fetch::NotASet),
            },
            Err(_) => Err(Fetch::NotASet),
        }
    }
}

/// Why the keys at a `jwks_uri` could not be had.
enum Fetch {
    Failed(charter_fetch::FetchError),
    /// Fetched, but not a JSON object with a `keys` array.
    NotASet,
}

#[async_trait]
impl StatementKeys for ConfiguredKeys {
    async fn keys(
        &self,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
    ) -> Result<Vec<PublicKey>, Error> {
        let url = match &issuer.keys {
            IssuerKeys::Inline(keys) => return Ok(keys.clone()),
            IssuerKeys::JwksUri(url) => url,
        };
        let unknown_kid =
            |keys: &[PublicKey]| kid.is_some_and(|kid| !keys.iter().any(|k| k.kid() == Some(kid)));
        let fetched = match self.fetch(url, false).await {
            Ok(keys) if unknown_kid(&keys) => self.fetch(url, true).await,
            Err(Fetch::NotASet) => self.fetch(url, true).await,
            other => other,
        };
        fetched.map_err(|e| {
            let problem = match e {
                Fetch::Failed(e) => {
                    tracing::warn!(issuer = %issuer.issuer, jwks_uri = %url, error = ?e,
                        "the keys of a trusted software statement issuer could not be fetched");
                    e.to_string()
                }
                Fetch::NotASet => {
                    tracing::warn!(issuer = %issuer.issuer, jwks_uri = %url,
                        "a trusted software statement issuer's jwks_uri serves no JSON JWK Set");
                    "the document is not a JSON JWK Set (RFC 7517 section 5)".into()
                }
            };
            invalid(format!(
                "the keys of issuer {:?} could not be fetched from its jwks_uri: {problem}",
                issuer.issuer
            ))
        })
    }
}

/// The registrar's statement settings: the trusted issuers and their keys.
pub(crate) struct Statements {
    pub(crate) config: SoftwareStatementsConfig,
    keys: Arc<dyn StatementKeys>,
}

impl Default for Statements {
    fn default() -> Self {
        Self {
            config: SoftwareStatementsConfig::default(),
            keys: Arc::new(InlineKeys),
        }
    }
}

/// A verified statement and the trusted issuer that signed it.
pub(crate) struct Vouched {
    pub(crate) statement: SoftwareStatement,
    pub(crate) issuer: TrustedIssuer,
}

impl Vouched {
    /// The audit actor of a registration the statement alone admitted.
    pub(crate) fn actor(&self) -> String {
        format!("statement:{}", self.issuer.issuer)
    }
}

fn unapproved(description: String) -> Error {
    ProtocolError::new(ErrorCode::UnapprovedSoftwareStatement, description).into()
}

/// The statement cannot be verified (RFC 7591 §3.2.2).
fn invalid(rule: String) -> Error {
    ProtocolError::new(
        ErrorCode::InvalidSoftwareStatement,
        format!("software_statement: {rule}"),
    )
    .into()
}

impl Registrar {
    /// Trusts the issuers of `config`, whose keys come from `keys`.
    pub fn with_software_statements(
        mut self,
        config: SoftwareStatementsConfig,
        keys: Arc<dyn StatementKeys>,
    ) -> Self {
        self.statements = Statements { config, keys };
        self
    }

    /// Whether a trusted software statement may stand in for an initial
    /// access token.
    pub fn accepts_software_statements(&self) -> bool {
        self.statements.config.enabled
    }

    /// The request's software statement, verified; `None` without one.
    pub(crate) async fn verify_statement(
        &self,
        body: &Map<String, Value>,
    ) -> Result<Option<Vouched>, Error> {
        match parse_software_statement(body)? {
            None => Ok(None),
            Some(unverified) => self.vouch(unverified).await.map(Some),
        }
    }

    async fn vouch(&self, unverified: UnverifiedStatement) -> Result<Vouched, Error> {
        // Only trusted issuers have keys here, so the signature of any other
        // issuer cannot be checked: a well-formed statement whose `iss` is
        // not in the trust list is unapproved, whoever signed it (RFC 7591
        // §3.2.2). The same holds while the feature is off.
        let Some(issuer) = self.statements.config.issuer(unverified.issuer()) else {
            return Err(unapproved(if self.accepts_software_statements() {
                format!(
                    "software_statement: issuer {:?} is not trusted by this server",
                    unverified.issuer()
                )
            } else {
                "software_statement: no software statement issuer is trusted by this server".into()
            }));
        };
        let keys = self.statements.keys.keys(issuer, unverified.kid()).await?;
        let statement = unverified.verify(&StatementCheck {
            keys: &keys,
            algorithms: &issuer.algorithms,
            audience: self.issuer.as_str(),
            now: crate::now(),
        })?;
        Ok(Vouched {
            statement,
            issuer: issuer.clone(),
        })
    }

    /// The organization a trusted issuer's clients belong to. It must exist
    /// and be active; the configuration names it, but only the database
    /// knows it, so a missing one is refused here, plainly.
    pub(crate) async fn issuer_organization(
        &self,
        issuer: &TrustedIssuer,
    ) -> Result<Organization, Error> {
        match self.store.organization_by_name(&issuer.organization).await? {
            Some(org) if org.status == "active" => Ok(org),
            Some(org) => Err(unapproved(format!(
                "software_statement: issuer {:?} registers clients into organization {:?}, which is {}",
                issuer.issuer, issuer.organization, org.status
            ))),
            None => {
                tracing::warn!(issuer = %issuer.issuer, organization = %issuer.organization,
                    "a trusted software statement issuer names an organization that does not exist");
                Err(unapproved(format!(
                    "software_statement: issuer {:?} registers clients into organization {:?}, which does not exist on this server; an administrator must create it",
                    issuer.issuer, issuer.organization
                )))
            }
        }
    }

    /// The statement of an RFC 7592 update.
    ///
    /// A client registered with a statement keeps one: the update must
    /// carry the stored statement again (accepted as it is, even once
    /// expired, since RFC 7592 §2.2 makes clients send back what they were
    /// given) or a new one, verified like at registration, whose issuer
    /// registers into the client's organization. Without it, the JSON
    /// members would silently override what the issuer vouched for. The
    /// client keeps its profile either way: an update never moves a client
    /// between profiles.
    pub(crate) async fn update_statement(
        &self,
        client: &ClientRecord,
        body: &Map<String, Value>,
    ) -> Result<Option<SoftwareStatement>, Error> {
        let stored = client
            .metadata
            .get("software_statement")
            .and_then(Value::as_str);
        let Some(unverified) = parse_software_statement(body)? else {
            return match stored {
                None => Ok(None),
                Some(_) => Err(ProtocolError::invalid_metadata(
                    "software_statement: this client registered with a software statement; send it again (or a newer one) with every update, since its values take precedence over JSON members (RFC 7591 §2.3)",
                )
                .into()),
            };
        };
        let unverified = match stored {
            Some(stored) => match unverified.into_previously_verified(stored) {
                Ok(statement) => return Ok(Some(statement)),
                Err(other) => other,
            },
            None => unverified,
        };
        let vouched = self.vouch(unverified).await?;
        let organization = self.issuer_organization(&vouched.issuer).await?;
        if organization.id != client.organization_id {
            return Err(unapproved(format!(
                "software_statement: issuer {:?} registers clients into organization {:?}, not this client's",
                vouched.issuer.issuer, vouched.issuer.organization
            )));
        }
        Ok(Some(vouched.statement))
    }
}
