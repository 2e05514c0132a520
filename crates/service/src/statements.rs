//! Software statements at registration and update (RFC 7591 §2.3): the
//! trusted issuer a statement names, that issuer's keys, verification, and
//! the organization the issuer's clients belong to.
//!
//! The protocol layer parses and verifies (`charter_protocol::
//! parse_software_statement`, `UnverifiedStatement::verify`); this module
//! supplies what that needs from configuration, the key source and the
//! store. Which organization and profile then bind the client is decided
//! with the other credentials in `registration.rs`.

use async_trait::async_trait;
use charter_config::{IssuerKeys, SoftwareStatementsConfig, TrustedIssuer};
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
/// Today every issuer's keys are configured inline ([`InlineKeys`]). An
/// issuer configured with a `jwks_uri` gets a second source: an
/// implementation that fetches the JWK Set through `charter-fetch` (cached,
/// fetched again once when `kid` names an unknown key), installed with
/// [`Registrar::with_software_statements`] in `charter::start`.
#[async_trait]
pub trait StatementKeys: Send + Sync {
    /// The keys `issuer` signs statements with; `kid` is the statement's
    /// key id, for sources that can refresh on an unknown one.
    async fn keys(
        &self,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
    ) -> Result<Vec<PublicKey>, Error>;
}

/// Keys given in the configuration (`[[software_statements.issuers]] jwks`).
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
        }
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
