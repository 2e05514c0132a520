//! Workload identity (issue 6, checklist §10): a workload registers a
//! client by presenting, instead of an initial access token, its SPIFFE
//! JWT-SVID or Kubernetes projected service-account token; the client is
//! bound to the workload's subject, and a profile can require it to
//! authenticate at the token endpoint with a fresh token of that workload.
//!
//! Tokens are parsed and verified by `charter_jose::workload` (pure); this
//! module supplies what that needs: the trust source a token's trust domain
//! or issuer names (`[workload_identity]`), its keys (inline, or fetched
//! through the one SSRF-safe fetcher from a SPIFFE bundle endpoint or a
//! cluster's JWK Set URL), the audience, the time, and the organization the
//! source registers into.
//!
//! At registration a bad token is answered like a bad initial access token,
//! whose place it takes: `401 invalid_token` with a fixed description, not
//! audited (anyone could fill the log) and counted against the source
//! address. At the token endpoint it is `401 invalid_client`, like any
//! client assertion.
//!
//! What this module deliberately does not do: accept a workload token from
//! a client that is not bound to that workload or whose profile does not
//! require it (a client authenticates with exactly one method at a time),
//! remember `jti` values (SPIFFE agents and the kubelet reuse a token for
//! its lifetime; the lifetime cap bounds a replay instead), or ask the
//! Kubernetes TokenReview API whether a pod still exists.

use charter_config::{Issuer, WorkloadIdentityConfig, WorkloadKeys, WorkloadTrustSource};
use charter_fetch::{Fetcher, Purpose};
use charter_jose::{
    parse_workload_jwt, parse_workload_token, spiffe_bundle_keys, Jwt, PublicKey,
    UnverifiedWorkloadToken, WorkloadCheck, WorkloadError, WorkloadIdentity, WorkloadKind,
};
use charter_protocol::{ClientMetadata, Error as ProtocolError, ErrorCode, WorkloadBinding};
use charter_store::ClientRecord;
use serde_json::Value;

use crate::registration::RegistrationGrant;
use crate::statements::Vouched;
use crate::{Error, Registrar, TokenService};

/// The client assertion type of a SPIFFE JWT-SVID
/// (draft-ietf-oauth-spiffe-client-auth §3.1). A JWT-SVID or a Kubernetes
/// service-account token is accepted under RFC 7523's `jwt-bearer` too.
pub const JWT_SPIFFE_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";

/// The trust sources of workload tokens; off by default.
#[derive(Default)]
pub(crate) struct Workloads {
    pub(crate) config: WorkloadIdentityConfig,
}

impl Workloads {
    /// Verifies a workload token with the keys of the trust source its
    /// trust domain (SPIFFE) or issuer (Kubernetes) names; a token of any
    /// other is refused before its signature is even looked at.
    async fn verify(
        &self,
        unverified: UnverifiedWorkloadToken,
        fetcher: Option<&Fetcher>,
        issuer: &Issuer,
    ) -> Result<(WorkloadIdentity, &WorkloadTrustSource), WorkloadError> {
        let Some(source) = self.config.source(unverified.kind(), unverified.trust()) else {
            return Err(match unverified.kind() {
                WorkloadKind::Spiffe => WorkloadError::UntrustedTrustDomain,
                WorkloadKind::Kubernetes => WorkloadError::UntrustedIssuer,
            });
        };
        let keys = source_keys(source, fetcher, unverified.kid()).await?;
        let identity = unverified.verify(&WorkloadCheck {
            keys: &keys,
            audience: source.audience.as_deref().unwrap_or(issuer.as_str()),
            now: crate::now(),
            max_lifetime_secs: self.config.max_token_lifetime.as_secs() as i64,
        })?;
        Ok((identity, source))
    }
}

/// The keys of a trust source: inline ones as they are; a `jwks_uri`
/// through the fetcher ([`Purpose::JwkSet`]: vetted addresses only, 64 KiB,
/// cached per `Cache-Control` within the `[fetch]` bounds), fetched once
/// more past the cache when the token's `kid` names no key of the cached
/// set (the source rotated its keys; `Fetcher::get_fresh` rate-limits this
/// per URL, so made-up `kid`s cannot make the server hammer it).
async fn source_keys(
    source: &WorkloadTrustSource,
    fetcher: Option<&Fetcher>,
    kid: Option<&str>,
) -> Result<Vec<PublicKey>, WorkloadError> {
    let url = match &source.keys {
        WorkloadKeys::Inline(keys) => return Ok(keys.clone()),
        WorkloadKeys::JwksUri(url) => url,
    };
    let unknown_kid =
        |keys: &[PublicKey]| kid.is_some_and(|kid| !keys.iter().any(|k| k.kid() == Some(kid)));
    let fetched = match fetch_keys(fetcher, source.kind, url, false).await {
        Ok(keys) if unknown_kid(&keys) => fetch_keys(fetcher, source.kind, url, true).await,
        other => other,
    };
    fetched.map_err(|problem| {
        tracing::warn!(source = %source.describe(), jwks_uri = %url, problem = %problem,
            "the keys of a workload trust source could not be fetched");
        WorkloadError::KeysUnavailable
    })
}

async fn fetch_keys(
    fetcher: Option<&Fetcher>,
    kind: WorkloadKind,
    url: &str,
    fresh: bool,
) -> Result<Vec<PublicKey>, String> {
    let fetcher = fetcher.ok_or("this server has no outbound fetcher")?;
    let fetched = if fresh {
        fetcher.get_fresh(url, Purpose::JwkSet).await
    } else {
        fetcher.get(url, Purpose::JwkSet).await
    }
    .map_err(|e| e.to_string())?;
    let set: Value =
        serde_json::from_slice(&fetched.body).map_err(|_| "the document is not JSON".to_owned())?;
    let Some(entries) = set.get("keys").and_then(Value::as_array) else {
        return Err("the document is not a JWK Set (RFC 7517 section 5)".into());
    };
    // Keys this server cannot use are skipped (RFC 7517 §5); a SPIFFE
    // bundle contributes its JWT-SVID keys only (checklist WL-06).
    Ok(match kind {
        WorkloadKind::Spiffe => spiffe_bundle_keys(&set).0,
        WorkloadKind::Kubernetes => entries
            .iter()
            .filter_map(|k| PublicKey::from_jwk(k).ok())
            .collect(),
    })
}

/// A workload that proved itself at registration: its verified identity,
/// the trust source that vouched for it, and that source's organization.
#[derive(Debug)]
pub struct Workload {
    identity: WorkloadIdentity,
    source: WorkloadTrustSource,
    organization_id: String,
}

impl Workload {
    /// The audit actor: `workload:<subject>`.
    pub(crate) fn actor(&self) -> String {
        format!("workload:{}", self.identity.subject)
    }

    /// The workload's provenance in one line for the audit log.
    pub(crate) fn audit_reason(&self) -> String {
        let uid = self
            .identity
            .service_account_uid
            .as_deref()
            .map(|uid| format!(" uid={uid:?}"))
            .unwrap_or_default();
        format!(
            "workload_identity {} subject={:?}{uid}",
            self.source.describe(),
            self.identity.subject
        )
    }

    /// What the client is bound to, stored with its metadata.
    pub(crate) fn binding(&self) -> WorkloadBinding {
        WorkloadBinding::of(&self.identity)
    }

    pub(crate) fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// The policy profile the source's clients are decided under.
    pub(crate) fn profile(&self) -> &str {
        &self.source.profile
    }
}

/// A bad workload token at registration, answered like a bad initial
/// access token.
fn invalid_token(e: WorkloadError) -> Error {
    Error::InvalidToken(e.description())
}

impl Registrar {
    /// Trusts the workload token sources of `config`.
    pub fn with_workload_identity(mut self, config: WorkloadIdentityConfig) -> Self {
        self.workloads = Workloads { config };
        self
    }

    /// Whether a workload identity token may stand in for an initial
    /// access token.
    pub fn accepts_workload_identity(&self) -> bool {
        self.workloads.config.enabled
    }

    /// Checks the workload identity token a registration carried (the
    /// `Workload-Identity` header) in place of an initial access token:
    /// parsed strictly, from a trusted trust domain or cluster, signed by
    /// one of its keys, for this server alone, unexpired and short-lived,
    /// and from a source whose organization exists and is active.
    ///
    /// `iat` is the `Authorization: Bearer` token, if any: a request with
    /// both credentials is refused, since neither could say which one binds
    /// the client.
    pub async fn authenticate_workload(
        &self,
        iat: Option<&str>,
        token: &str,
    ) -> Result<RegistrationGrant, Error> {
        if iat.is_some() {
            return Err(ProtocolError::invalid_request(
                "present either an initial access token (Authorization: Bearer) or a workload identity token (Workload-Identity), not both",
            )
            .into());
        }
        if !self.accepts_workload_identity() {
            return Err(Error::InvalidToken(
                "this server accepts no workload identity tokens",
            ));
        }
        let unverified = parse_workload_token(token).map_err(invalid_token)?;
        let (identity, source) = self
            .workloads
            .verify(unverified, self.fetcher.as_ref(), &self.issuer)
            .await
            .map_err(invalid_token)?;
        // The organization must exist and be active: the configuration
        // names it, but only the database knows it.
        let organization = self
            .store
            .organization_by_name(&source.organization)
            .await?;
        let organization = match organization {
            Some(org) if org.status == "active" => org,
            other => {
                if other.is_none() {
                    tracing::warn!(source = %source.describe(), organization = %source.organization,
                        "a workload trust source names an organization that does not exist");
                }
                return Err(Error::InvalidToken(
                    "the workload's trust source registers clients into an organization that does not exist or is not active",
                ));
            }
        };
        Ok(RegistrationGrant::for_workload(Workload {
            identity,
            source: source.clone(),
            organization_id: organization.id,
        }))
    }

    /// A software statement beside a workload token must come from an
    /// issuer that registers into the workload's organization (like one
    /// beside an initial access token); the workload's trust source then
    /// decides the profile, since it vouches for this very instance.
    pub(crate) async fn check_workload_statement(
        &self,
        workload: &Workload,
        vouched: Option<&Vouched>,
    ) -> Result<(), Error> {
        let Some(vouched) = vouched else {
            return Ok(());
        };
        let organization = self.issuer_organization(&vouched.issuer).await?;
        if organization.id != workload.organization_id {
            return Err(ProtocolError::new(
                ErrorCode::UnapprovedSoftwareStatement,
                format!(
                    "software_statement: issuer {:?} registers clients into organization {:?}, but the workload belongs to another organization",
                    vouched.issuer.issuer, vouched.issuer.organization
                ),
            )
            .into());
        }
        Ok(())
    }
}

/// The workload a stored client is bound to, if any.
pub(crate) fn stored_binding(client: &ClientRecord) -> Result<Option<WorkloadBinding>, Error> {
    match client.metadata.get("workload_identity") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| {
                Error::Internal(format!(
                    "the stored workload binding of {} is unreadable: {e}",
                    client.client_id
                ))
            }),
    }
}

/// Whether a JWT client assertion is a workload's own token rather than a
/// `private_key_jwt` assertion: the SPIFFE assertion type, or a subject
/// that names a workload (a client id never does).
pub(crate) fn is_workload_assertion(assertion_type: Option<&str>, jwt: &Jwt) -> bool {
    assertion_type == Some(JWT_SPIFFE_ASSERTION)
        || jwt
            .claim_str("sub")
            .is_some_and(charter_jose::is_workload_subject)
}

impl TokenService {
    /// Trusts the workload token sources of `config` (for clients whose
    /// profile requires workload assertions).
    pub fn with_workload_identity(mut self, config: WorkloadIdentityConfig) -> Self {
        self.workloads = Workloads { config };
        self
    }

    /// Verifies a workload's token presented as the client assertion of a
    /// client (RFC 7521 §4.2: the `client_id` parameter names the client;
    /// the assertion's subject is the workload bound to it, as the SPIFFE
    /// client-auth draft §3.1 step 5 allows: "associated with" the client).
    ///
    /// `Err(None)`: this is not how the client authenticates — it is bound
    /// to no workload, or its profile does not require workload assertions
    /// (then its registered method is the only one) — answered with the
    /// generic failure. `Err(Some(description))`: it is, and the token
    /// fails: untrusted, unsigned, not for this server, expired, too
    /// long-lived, or of another workload (another subject, cluster, or a
    /// re-created service account).
    pub(crate) async fn verify_workload_assertion(
        &self,
        jwt: &Jwt,
        profile: &str,
        metadata: &ClientMetadata,
    ) -> Result<(), Option<String>> {
        let required = self
            .policy()
            .profile(profile)
            .is_some_and(|p| p.require_workload_assertion);
        let Some(binding) = metadata.workload_identity.as_ref().filter(|_| required) else {
            return Err(None);
        };
        let fail = |e: WorkloadError| Some(format!("client_assertion: {}", e.description()));
        let unverified = parse_workload_jwt(jwt.clone()).map_err(fail)?;
        let (identity, _) = self
            .workloads
            .verify(unverified, self.fetcher(), self.issuer())
            .await
            .map_err(fail)?;
        if !binding.matches(&identity) {
            return Err(Some(
                "client_assertion: the token is not from the workload this client is bound to"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the client's profile requires it to authenticate with its
    /// workload's token.
    pub(crate) fn requires_workload_assertion(
        &self,
        profile: Option<&charter_policy::Profile>,
    ) -> bool {
        profile.is_some_and(|p| p.require_workload_assertion)
    }
}
