//! Client ID Metadata Documents: a `client_id` that is an https URL is
//! resolved into a stored client by fetching its document, under the
//! operator's domain policy (`[client_id_metadata_documents]`).
//!
//! [`MetadataDocuments::resolve`] runs before the authorization endpoint or
//! the token endpoint looks such a client up, and leaves the store holding
//! the client as its document and the policy say now, or refuses:
//!
//! 1. The URL is checked (`check_client_id_url`, CIMD §3) and its host
//!    matched against the trusted domains; an unknown host under
//!    `unknown_domains = "refuse"` is refused before anything is fetched.
//! 2. A stored copy still fresh (its `Cache-Control`, within the fetcher's
//!    bounds) is used as it is: no fetch on the hot path.
//! 3. Otherwise the document is fetched through the fetcher (https, vetted
//!    addresses, no redirects, 200 only, 5 KiB, JSON), validated
//!    (`validate_document`) and decided by the same `policy::evaluate` as
//!    any registration, under the domain's profile; its `jwks_uri` is vetted
//!    like a registered one.
//! 4. The outcome is stored in one transaction with its audit entry: a new
//!    client (`client.register`), the same document marked fresh again (no
//!    audit: cache bookkeeping), a changed document as a new incarnation of
//!    the client that ends every consent and grant of the old one
//!    (`client.document_changed`; CIMD §6.3 lets the server revoke), or, when
//!    the document is gone (a definitive answer other than 200: 4xx, a
//!    redirect, a wrong content type, too large) or no longer passes the
//!    validation or the policy, the client deleted with what was granted to
//!    it (`client.document_removed`). A failure that may be transient (no
//!    connection, a timeout, 5xx, 429) refuses this request only.
//!
//! A client an administrator revoked or rejected stays so whatever its
//! document says; an expired one (past its lifetime, or reaped as unused)
//! comes back as a new incarnation when its document is still served.

use charter_config::{DocumentBinding, MetadataDocumentsConfig, UnknownDomains};
use charter_fetch::{FetchError, Fetcher, Purpose};
use charter_policy::{evaluate, Decision, Policy, PolicyState};
use charter_protocol::{
    check_client_id_url, validate_document, AuthMethod, ClientMetadata, Error as ProtocolError,
    ErrorCode,
};
use charter_store::{
    AuditEvent, Change, ClientRecord, ClientStatus, DocumentState, Inserted, Store, TokenHash,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;
use tokio::sync::Semaphore;

use crate::credentials::{self, Credential, Hasher};
use crate::{Error, RequestContext};

/// Resolves metadata-document clients; one per server, shared by the
/// authorization and token endpoints.
pub struct MetadataDocuments {
    store: Arc<dyn Store>,
    hasher: Hasher,
    policy: Arc<Policy>,
    fetcher: Fetcher,
    config: MetadataDocumentsConfig,
    /// Bound the document fetches in flight.
    trusted_fetches: Semaphore,
    unknown_fetches: Semaphore,
    /// One lock per URL being fetched, so concurrent first uses fetch once.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// URLs whose site failed, bridged with the stored copy until then.
    bridged: Mutex<HashMap<String, i64>>,
}

/// Why a document client cannot be used now; the description is for the
/// user's error page and the token endpoint's `error_description`.
fn refused(description: impl Into<String>) -> Error {
    ProtocolError::new(ErrorCode::InvalidClient, description).into()
}

/// Whether a fetch failure says the document itself is gone or
/// unacceptable (the client is then removed), as opposed to a failure that
/// may pass or that this server's own rules cause (refused, nothing
/// removed): 401, 403 (a CDN's bot wall), 408, 425 and 429 may pass; an
/// address refused now may be a DNS change or an allowlist edit.
fn definitive(e: &FetchError) -> bool {
    match e {
        FetchError::Status { code, .. } => {
            (400..500).contains(code) && ![401, 403, 408, 425, 429].contains(code)
        }
        FetchError::Redirect { .. }
        | FetchError::ContentType { .. }
        | FetchError::TooLarge { .. } => true,
        FetchError::InvalidUrl { .. }
        | FetchError::NotHttps { .. }
        | FetchError::Userinfo { .. }
        | FetchError::NonGlobalAddress { .. }
        | FetchError::Resolve { .. }
        | FetchError::NoAddresses { .. }
        | FetchError::Connect { .. }
        | FetchError::Timeout { .. }
        | FetchError::Body { .. }
        | FetchError::Config(_) => false,
    }
}

/// How long past its freshness a stored copy is still used while the
/// document's site fails transiently (RFC 5861 `stale-if-error`).
const STALE_IF_ERROR: i64 = 3600;

/// Document fetches in flight at once, for trusted and for unknown domains.
const TRUSTED_FETCHES: usize = 32;
const UNKNOWN_FETCHES: usize = 8;

/// How long a request waits for a fetch slot before it is bridged or
/// refused as busy.
const FETCH_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// After a bridged failure, how long the site is left alone (seconds).
const BRIDGE_RETRY: i64 = 30;

/// URLs tracked (locks, bridges) before the idle ones are dropped.
const MAX_TRACKED_URLS: usize = 256;

/// Why a fetched document was not admitted.
enum Failure {
    /// The document itself is unacceptable: a stored client goes.
    Document(String),
    /// Something outside the document refuses it now (organization,
    /// profile, a key URL): refused while it lasts, nothing removed.
    Refused(String),
    Internal(Error),
}

impl From<charter_store::Error> for Failure {
    fn from(e: charter_store::Error) -> Self {
        Failure::Internal(e.into())
    }
}

/// A fetch failure as the user and the client see it: what went wrong,
/// without internal detail (what a name resolved to, connection errors),
/// which goes to the log.
fn describe(e: &FetchError) -> String {
    match e {
        FetchError::Status { code, .. } => format!("the site answered with status {code}"),
        FetchError::Redirect { status, .. } => {
            format!("the site answered with a redirect ({status}), which is not followed")
        }
        FetchError::ContentType { found, .. } => format!(
            "the site answered with content type {}, not JSON",
            found.as_deref().unwrap_or("(none)")
        ),
        FetchError::TooLarge { cap, .. } => format!("the document is larger than {cap} bytes"),
        FetchError::NonGlobalAddress { .. } => {
            "its host is not a public internet address; refused".into()
        }
        FetchError::InvalidUrl { .. }
        | FetchError::NotHttps { .. }
        | FetchError::Userinfo { .. } => "its URL is not one this server fetches".into(),
        FetchError::Timeout { .. } => "the site did not answer in time".into(),
        FetchError::Resolve { .. }
        | FetchError::NoAddresses { .. }
        | FetchError::Connect { .. }
        | FetchError::Body { .. }
        | FetchError::Config(_) => "the site could not be reached".into(),
    }
}

/// What the server decided for a fetched, valid document.
struct Decided {
    metadata: ClientMetadata,
    status: ClientStatus,
    reasons: Vec<String>,
    organization_id: String,
    profile: String,
    max_clients: Option<u64>,
    client_lifetime: i64,
}

impl MetadataDocuments {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Hasher,
        policy: Arc<Policy>,
        fetcher: Fetcher,
        config: MetadataDocumentsConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            policy,
            fetcher,
            config,
            trusted_fetches: Semaphore::new(TRUSTED_FETCHES),
            unknown_fetches: Semaphore::new(UNKNOWN_FETCHES),
            gates: Mutex::new(HashMap::new()),
            bridged: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the server accepts metadata documents (and says so in
    /// discovery).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Makes the stored client of `client_id` (an https URL) current, or
    /// refuses with `invalid_client` and a description for the user.
    /// `may_fetch`: false when the caller's source is over its failure
    /// limit; it may still use a stored copy but makes the server fetch
    /// nothing.
    pub async fn resolve(
        &self,
        client_id: &str,
        context: &RequestContext,
        may_fetch: bool,
    ) -> Result<(), Error> {
        if !self.config.enabled {
            return Err(refused(
                "this server does not accept client ID metadata documents; register the client instead",
            ));
        }
        let url = check_client_id_url(client_id).map_err(|e| refused(format!("client_id: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let Some(binding) = self.config.binding(&host) else {
            return Err(refused(format!(
                "client_id: documents from {host} are not accepted by this server (its domain is not trusted)"
            )));
        };
        if self.settled(client_id, &binding).await? {
            return Ok(());
        }
        if !may_fetch {
            return Err(refused(
                "too many failed requests from this address; try again later",
            ));
        }
        // One fetch per URL at a time (the others then find it settled),
        // and a bound on document fetches in flight: a pool for trusted
        // domains and a smaller one for unknown domains, so that slow
        // unknown sites cannot hold up trusted clients.
        let gate = self.gate(client_id);
        let _one = gate.lock().await;
        if self.settled(client_id, &binding).await? {
            return Ok(());
        }
        let pool = match binding.unknown {
            Some(_) => &self.unknown_fetches,
            None => &self.trusted_fetches,
        };
        let Ok(Ok(_slot)) = tokio::time::timeout(FETCH_SLOT_WAIT, pool.acquire()).await else {
            let stored = self.store.client(client_id).await?;
            return self.bridge_or_refuse(
                client_id,
                stored.as_ref(),
                &binding,
                "this server is busy fetching other metadata documents".into(),
            );
        };
        self.refresh(client_id, &host, &binding, context).await
    }

    /// Whether the stored client needs no fetch: fresh under the same
    /// profile (or inside a bridge over its site's failure), or decided by
    /// an administrator (revoked or rejected stand whatever the document
    /// says; the endpoint's usability check refuses).
    async fn settled(&self, client_id: &str, binding: &DocumentBinding) -> Result<bool, Error> {
        let Some(stored) = self.store.client(client_id).await? else {
            return Ok(false);
        };
        let now = crate::now();
        Ok(match stored.status {
            ClientStatus::Revoked | ClientStatus::Rejected => true,
            ClientStatus::Expired => false,
            ClientStatus::Active | ClientStatus::Pending => {
                stored.profile == binding.profile
                    && stored.document.is_some_and(|d| {
                        d.fresh_until > now
                            || (d.fresh_until + STALE_IF_ERROR > now
                                && self.bridged_until(client_id) > now)
                    })
            }
        })
    }

    /// RFC 5861 stale-if-error: while a document's site fails transiently,
    /// a client whose copy went stale less than an hour ago goes on with
    /// it, and the site is not asked again for [`BRIDGE_RETRY`] (requests
    /// would otherwise queue behind each other's timeouts). Otherwise the
    /// request is refused with `why`; nothing is removed.
    fn bridge_or_refuse(
        &self,
        client_id: &str,
        stored: Option<&ClientRecord>,
        binding: &DocumentBinding,
        why: String,
    ) -> Result<(), Error> {
        let now = crate::now();
        let usable = stored.is_some_and(|s| {
            matches!(s.status, ClientStatus::Active | ClientStatus::Pending)
                && s.profile == binding.profile
                && s.document
                    .is_some_and(|d| d.fresh_until + STALE_IF_ERROR > now)
        });
        if !usable {
            return Err(refused(why));
        }
        tracing::warn!(client_id, reason = %why, "using the stored metadata document while its site fails");
        let mut bridged = self.bridged.lock().unwrap_or_else(PoisonError::into_inner);
        if bridged.len() >= MAX_TRACKED_URLS {
            bridged.retain(|_, until| *until > now);
        }
        bridged.insert(client_id.to_owned(), now + BRIDGE_RETRY);
        Ok(())
    }

    fn bridged_until(&self, client_id: &str) -> i64 {
        let bridged = self.bridged.lock().unwrap_or_else(PoisonError::into_inner);
        bridged.get(client_id).copied().unwrap_or(0)
    }

    /// The lock of `client_id`'s fetch. Locks nobody holds or awaits are
    /// dropped as the map grows (on every path out, cancellation included),
    /// so it stays bounded by the URLs in flight.
    fn gate(&self, client_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        if gates.len() >= MAX_TRACKED_URLS {
            gates.retain(|_, g| Arc::strong_count(g) > 1);
        }
        Arc::clone(gates.entry(client_id.to_owned()).or_default())
    }

    /// Fetches, validates, decides and stores the document of `client_id`.
    async fn refresh(
        &self,
        client_id: &str,
        host: &str,
        binding: &DocumentBinding,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let now = crate::now();
        let existing = self.store.client(client_id).await?;
        let public_only =
            binding.unknown.is_some() && !self.config.unknown_domains_use_fetch_allowlist;
        let fetched = if public_only {
            // Nobody the operator trusts chose this URL: the fetch
            // allowlists do not apply to it (CIMD §6.5).
            self.fetcher
                .get_public(client_id, Purpose::MetadataDocument)
                .await
        } else {
            self.fetcher.get(client_id, Purpose::MetadataDocument).await
        };
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                let why = format!(
                    "its metadata document could not be fetched: {}",
                    describe(&e)
                );
                tracing::warn!(client_id, error = %e, "metadata document fetch failed");
                if definitive(&e) {
                    self.remove(existing.as_ref(), &why, context).await?;
                    return Err(refused(why));
                }
                return self.bridge_or_refuse(client_id, existing.as_ref(), binding, why);
            }
        };
        let decided = match self
            .decide(client_id, &fetched.body, binding, existing.as_ref())
            .await
        {
            Ok(decided) => decided,
            Err(Failure::Document(why)) => {
                // CIMD §4.4: an invalid document is not cached.
                self.fetcher.forget(client_id, Purpose::MetadataDocument);
                let why = format!("its metadata document is refused: {why}");
                self.remove(existing.as_ref(), &why, context).await?;
                return Err(refused(why));
            }
            // Not the document's fault (the organization, the profile's
            // limits, a key URL that cannot be reached now): refused while
            // it lasts, nothing removed.
            Err(Failure::Refused(why)) => return Err(refused(why)),
            Err(Failure::Internal(e)) => return Err(e),
        };
        let fresh_until = fetched
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(now, |d| d.as_secs() as i64);
        let expires_at = now + decided.client_lifetime;
        let digest = digest(&decided)?;
        if let Some(stored) = &existing {
            let same = stored.document.is_some_and(|d| d.digest == digest);
            if same && stored.status != ClientStatus::Expired {
                // The same document: fresh again, and a client in use does
                // not reach the end of its lifetime while its site serves it.
                self.store
                    .refresh_document(client_id, &digest, fresh_until, expires_at)
                    .await?;
                return Ok(());
            }
        }
        // Issued now, after the fetch: a token minted for the old client
        // while this one was fetched predates it (introspection's rule).
        let record = self.record(client_id, &decided, digest, fresh_until, crate::now())?;
        let changed = existing
            .as_ref()
            .is_some_and(|s| s.status != ClientStatus::Expired);
        let mut event = context.event(
            format!("document:{host}"),
            if changed {
                "client.document_changed"
            } else {
                "client.register"
            },
            status_name(decided.status),
        );
        event.organization_id = Some(decided.organization_id.clone());
        event.client_id = Some(client_id.to_owned());
        event.policy_version = Some(self.policy.version.clone());
        event.reasons = [vec![provenance(binding)], decided.reasons.clone()].concat();
        match &existing {
            Some(stored) => {
                let Some(old) = stored.document else {
                    return Err(Error::Internal(format!(
                        "client {client_id} has an https client_id but no document state"
                    )));
                };
                if self
                    .store
                    .replace_client(&old.digest, record, event)
                    .await?
                {
                    tracing::info!(
                        client_id,
                        status = status_name(decided.status),
                        "metadata document client replaced by a new one"
                    );
                } else {
                    // Another replica replaced or removed it, or an
                    // administrator revoked it, first; that stands and
                    // the endpoint reads it.
                    tracing::debug!(client_id, "metadata document client changed concurrently");
                }
            }
            None => match self
                .store
                .insert_client(record, decided.max_clients, event)
                .await
            {
                Ok(Inserted::Stored) => {
                    tracing::info!(
                        client_id,
                        status = status_name(decided.status),
                        "metadata document client admitted"
                    );
                }
                Ok(Inserted::QuotaExceeded) => {
                    return Err(refused(format!(
                        "its organization has reached the {} clients its profile allows",
                        decided.max_clients.unwrap_or_default()
                    )))
                }
                Ok(Inserted::CredentialExhausted) => {
                    return Err(Error::Internal(
                        "a metadata document client counted an initial access token".into(),
                    ))
                }
                // Two first requests raced: the other one stored it.
                Err(e) => {
                    if self.store.client(client_id).await?.is_none() {
                        return Err(e.into());
                    }
                }
            },
        }
        Ok(())
    }

    /// Validates the document and decides it under the domain's profile.
    async fn decide(
        &self,
        client_id: &str,
        body: &[u8],
        binding: &DocumentBinding,
        existing: Option<&ClientRecord>,
    ) -> Result<Decided, Failure> {
        let mut metadata =
            validate_document(client_id, body).map_err(|e| Failure::Document(e.description))?;
        // The unknown-domain rules are this server's policy, not faults of
        // the document: a domain dropped from the trusted list refuses its
        // confidential clients without deleting them.
        if binding.unknown.is_some() {
            if metadata.token_endpoint_auth_method != AuthMethod::None {
                return Err(Failure::Refused(
                    "token_endpoint_auth_method: documents from domains this server does not trust are admitted as public clients only (\"none\")".into(),
                ));
            }
            // Nothing else is fetched on the word of a document nobody the
            // operator trusts vouched for.
            if metadata.jwks_uri.is_some() || metadata.sector_identifier_uri.is_some() {
                return Err(Failure::Refused(
                    "jwks_uri and sector_identifier_uri are not accepted in documents from domains this server does not trust".into(),
                ));
            }
        }
        let organization = self
            .store
            .organization_by_name(&binding.organization)
            .await?
            .filter(|o| o.status == "active")
            .ok_or_else(|| {
                tracing::warn!(organization = %binding.organization, "metadata documents name an organization that does not exist or is not active");
                Failure::Refused(format!(
                    "organization {:?}, which clients of this domain belong to, does not exist or is not active here",
                    binding.organization
                ))
            })?;
        let profile = self.policy.profile(&binding.profile).ok_or_else(|| {
            Failure::Internal(Error::Internal(format!(
                "metadata documents' profile {:?} is not defined",
                binding.profile
            )))
        })?;
        let organization_client_count = match profile.max_clients_per_organization {
            Some(_) => {
                let count = self
                    .store
                    .organization_client_count(&organization.id)
                    .await?;
                // A client already stored there does not count against
                // its own place.
                let own = existing.is_some_and(|c| c.organization_id == organization.id);
                count.saturating_sub(u64::from(own))
            }
            None => 0,
        };
        let state = PolicyState {
            organization_client_count,
            is_update: false,
        };
        // A document is not a request to this server: it is published once
        // for every server, so it may list scopes this profile does not
        // allow. They are dropped (the registered scope is what the client
        // may ask for here) rather than refusing the client; with none left
        // the profile's default scope applies.
        let narrowed = narrow_scope(&mut metadata, profile.scopes.as_deref());
        let (metadata, mut status, mut reasons) = match evaluate(metadata, profile, state) {
            Decision::Admit {
                metadata,
                substitutions,
            } => (metadata, ClientStatus::Active, substitutions),
            Decision::Pending {
                metadata,
                substitutions,
                reasons,
            } => (
                metadata,
                ClientStatus::Pending,
                [reasons, substitutions].concat(),
            ),
            // What the document asks for is outside the profile now: the
            // client cannot be used while that lasts. It is not removed: a
            // policy change must not end every user's grants at once.
            Decision::Refuse(e) => return Err(Failure::Refused(e.description)),
        };
        reasons.extend(narrowed);
        if binding.unknown == Some(UnknownDomains::Pending) && status == ClientStatus::Active {
            status = ClientStatus::Pending;
            reasons.push("documents from domains this server does not trust wait for an administrator's approval".into());
        }
        // CIMD §6.5: URLs inside the document are held to the same rules
        // as registered ones (never a special-use address).
        if metadata.jwks_uri.is_some() || metadata.sector_identifier_uri.is_some() {
            crate::remote::check_remote_metadata(&self.fetcher, profile, &metadata)
                .await
                .map_err(|e| match e {
                    // The detail (what a name resolved to) goes to the log
                    // only: the page is shown to anyone.
                    Error::Protocol(p) => {
                        tracing::warn!(client_id, reason = %p.description, "a metadata document's jwks_uri or sector_identifier_uri is refused");
                        Failure::Refused(
                            "its jwks_uri or sector_identifier_uri cannot be used now".into(),
                        )
                    }
                    other => Failure::Internal(other),
                })?;
        }
        Ok(Decided {
            metadata,
            status,
            reasons,
            organization_id: organization.id,
            profile: profile.name.clone(),
            max_clients: profile.max_clients_per_organization,
            client_lifetime: profile.client_lifetime.as_secs() as i64,
        })
    }

    fn record(
        &self,
        client_id: &str,
        decided: &Decided,
        digest: TokenHash,
        fresh_until: i64,
        now: i64,
    ) -> Result<ClientRecord, Error> {
        // A document client has no registration access token (it is managed
        // by its document); the stored hash is of a random value nobody
        // holds, so the configuration endpoint refuses every token for it.
        let unusable = credentials::generate(Credential::RegistrationAccessToken)?;
        Ok(ClientRecord {
            client_id: client_id.to_owned(),
            organization_id: decided.organization_id.clone(),
            initial_access_token_id: None,
            metadata: serde_json::to_value(&decided.metadata)
                .map_err(|e| Error::Internal(e.to_string()))?,
            secret_hash: None,
            secret_expires_at: None,
            registration_token_hash: self
                .hasher
                .hash(Credential::RegistrationAccessToken, unusable.expose()),
            issued_at: now,
            updated_at: now,
            profile: decided.profile.clone(),
            policy_version: self.policy.version.clone(),
            status: decided.status,
            expires_at: Some(now + decided.client_lifetime),
            approval: None,
            approved_until: None,
            last_used_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            document: Some(DocumentState {
                fresh_until,
                digest,
            }),
        })
    }

    /// Deletes a stored client whose document is gone or refused now, with
    /// everything granted to it, audited; nothing when none is stored.
    async fn remove(
        &self,
        existing: Option<&ClientRecord>,
        why: &str,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let Some((stored, document)) = existing.and_then(|s| s.document.map(|d| (s, d))) else {
            return Ok(());
        };
        let mut event: AuditEvent = context.event("system", "client.document_removed", "deleted");
        event.organization_id = Some(stored.organization_id.clone());
        event.client_id = Some(stored.client_id.clone());
        event.reasons = vec![why.to_owned()];
        // Only the copy this request judged, and never a client an
        // administrator revoked or rejected in the meantime.
        let change = Change::RemoveDocumentClient {
            client_id: stored.client_id.clone(),
            expected_digest: document.digest,
        };
        if self.store.apply_change(change, event).await? {
            tracing::warn!(client_id = %stored.client_id, reason = why, "metadata document client removed");
        }
        Ok(())
    }
}

/// Drops the scope values `allowed` (a profile's list; `None`: any) does
/// not hold; returns a reason for the audit entry when it dropped any.
fn narrow_scope(metadata: &mut ClientMetadata, allowed: Option<&[String]>) -> Option<String> {
    let (Some(allowed), Some(scope)) = (allowed, &metadata.scope) else {
        return None;
    };
    let (kept, dropped): (Vec<&str>, Vec<&str>) = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .partition(|s| allowed.iter().any(|a| a == s));
    if dropped.is_empty() {
        return None;
    }
    let reason = format!(
        "scope: {} dropped from the document (not allowed by the profile)",
        dropped.join(" ")
    );
    metadata.scope = (!kept.is_empty()).then(|| kept.join(" "));
    Some(reason)
}

fn status_name(status: ClientStatus) -> &'static str {
    match status {
        ClientStatus::Pending => "pending",
        _ => "admitted",
    }
}

fn provenance(binding: &DocumentBinding) -> String {
    match (&binding.domain, binding.unknown) {
        (Some(domain), _) => format!("metadata document from trusted domain {domain}"),
        (None, Some(choice)) => format!(
            "metadata document from a domain this server does not trust (unknown_domains = {})",
            choice.as_str()
        ),
        (None, None) => "metadata document".into(),
    }
}

/// SHA-256 over what the server decided: the validated metadata and where
/// it binds the client. A change to either is a new incarnation.
fn digest(decided: &Decided) -> Result<TokenHash, Error> {
    let bytes = serde_json::to_vec(&(
        &decided.metadata,
        &decided.organization_id,
        &decided.profile,
        status_name(decided.status),
    ))
    .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Sha256::digest(bytes).into())
}
