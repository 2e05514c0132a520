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
use std::sync::Arc;
use std::time::UNIX_EPOCH;

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
}

/// Why a document client cannot be used now; the description is for the
/// user's error page and the token endpoint's `error_description`.
fn refused(description: impl Into<String>) -> Error {
    ProtocolError::new(ErrorCode::InvalidClient, description).into()
}

/// Whether a fetch failure says the document is gone or unacceptable, as
/// opposed to a failure that may pass (the client is then not removed).
fn definitive(e: &FetchError) -> bool {
    match e {
        FetchError::Status { code, .. } => (400..500).contains(code) && *code != 429,
        FetchError::Redirect { .. }
        | FetchError::ContentType { .. }
        | FetchError::TooLarge { .. }
        | FetchError::InvalidUrl { .. }
        | FetchError::NotHttps { .. }
        | FetchError::Userinfo { .. }
        | FetchError::NonGlobalAddress { .. } => true,
        FetchError::Resolve { .. }
        | FetchError::NoAddresses { .. }
        | FetchError::Connect { .. }
        | FetchError::Timeout { .. }
        | FetchError::Body { .. }
        | FetchError::Config(_) => false,
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
        }
    }

    /// Whether the server accepts metadata documents (and says so in
    /// discovery).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Makes the stored client of `client_id` (an https URL) current, or
    /// refuses with `invalid_client` and a description for the user.
    pub async fn resolve(&self, client_id: &str, context: &RequestContext) -> Result<(), Error> {
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
        let now = crate::now();
        let existing = self.store.client(client_id).await?;
        if let Some(stored) = &existing {
            match stored.status {
                // An administrator's decision stands whatever the document
                // says; the endpoint's usability check refuses the client.
                ClientStatus::Revoked | ClientStatus::Rejected => return Ok(()),
                ClientStatus::Expired => {}
                ClientStatus::Active | ClientStatus::Pending => {
                    if stored.document.is_some_and(|d| d.fresh_until > now) {
                        return Ok(());
                    }
                }
            }
        }
        let fetched = match self.fetcher.get(client_id, Purpose::MetadataDocument).await {
            Ok(fetched) => fetched,
            Err(e) => {
                let why = format!("its metadata document could not be fetched: {e}");
                if definitive(&e) {
                    self.remove(existing.as_ref(), &why, context).await?;
                }
                return Err(refused(why));
            }
        };
        let decided = match self.decide(client_id, &fetched.body, &binding).await {
            Ok(decided) => decided,
            Err(e) => {
                // CIMD §4.4: an invalid document is not cached.
                self.fetcher.forget(client_id, Purpose::MetadataDocument);
                let why = match &e {
                    Error::Protocol(p) => {
                        format!("its metadata document is refused: {}", p.description)
                    }
                    other => other.to_string(),
                };
                if matches!(e, Error::Protocol(_)) {
                    self.remove(existing.as_ref(), &why, context).await?;
                    return Err(refused(why));
                }
                return Err(e);
            }
        };
        let fresh_until = fetched
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(now, |d| d.as_secs() as i64);
        let digest = digest(&decided)?;
        if let Some(stored) = &existing {
            let same = stored.document.is_some_and(|d| d.digest == digest);
            if same && stored.status != ClientStatus::Expired {
                self.store
                    .refresh_document(client_id, &digest, fresh_until)
                    .await?;
                return Ok(());
            }
        }
        let record = self.record(client_id, &decided, digest, fresh_until, now)?;
        let actor = format!("document:{host}");
        let mut event = context.event(
            actor,
            if existing.is_some() {
                "client.document_changed"
            } else {
                "client.register"
            },
            status_name(decided.status),
        );
        event.organization_id = Some(decided.organization_id.clone());
        event.client_id = Some(client_id.to_owned());
        event.policy_version = Some(self.policy.version.clone());
        event.reasons = [vec![provenance(&binding)], decided.reasons.clone()].concat();
        match &existing {
            Some(stored) => {
                let Some(old) = stored.document else {
                    return Err(Error::Internal(format!(
                        "client {client_id} has an https client_id but no document state"
                    )));
                };
                if !self
                    .store
                    .replace_client(&old.digest, record, event)
                    .await?
                {
                    // Another request replaced or removed it first; its
                    // outcome stands and this request reads it.
                    tracing::debug!(client_id, "metadata document client replaced concurrently");
                }
                tracing::info!(
                    client_id,
                    status = status_name(decided.status),
                    "metadata document changed; client replaced"
                );
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
    ) -> Result<Decided, Error> {
        let mut metadata = validate_document(client_id, body)?;
        if binding.unknown.is_some() && metadata.token_endpoint_auth_method != AuthMethod::None {
            return Err(ProtocolError::invalid_metadata(
                "token_endpoint_auth_method: documents from domains this server does not trust are admitted as public clients only (\"none\")",
            )
            .into());
        }
        let organization = self
            .store
            .organization_by_name(&binding.organization)
            .await?
            .filter(|o| o.status == "active")
            .ok_or_else(|| {
                tracing::warn!(organization = %binding.organization, "metadata documents name an organization that does not exist or is not active");
                Error::from(ProtocolError::new(
                    ErrorCode::InvalidClient,
                    format!(
                        "organization {:?}, which clients of this domain belong to, does not exist or is not active here",
                        binding.organization
                    ),
                ))
            })?;
        let profile = self.policy.profile(&binding.profile).ok_or_else(|| {
            Error::Internal(format!(
                "metadata documents' profile {:?} is not defined",
                binding.profile
            ))
        })?;
        let organization_client_count = match profile.max_clients_per_organization {
            Some(_) => {
                self.store
                    .organization_client_count(&organization.id)
                    .await?
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
            Decision::Refuse(e) => return Err(e.into()),
        };
        reasons.extend(narrowed);
        if binding.unknown == Some(UnknownDomains::Pending) && status == ClientStatus::Active {
            status = ClientStatus::Pending;
            reasons.push("documents from domains this server does not trust wait for an administrator's approval".into());
        }
        // CIMD §6.5: URLs inside the document are held to the same rules
        // as registered ones (never a special-use address).
        if metadata.jwks_uri.is_some() || metadata.sector_identifier_uri.is_some() {
            crate::remote::check_remote_metadata(&self.fetcher, profile, &metadata).await?;
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
        let Some(stored) = existing else {
            return Ok(());
        };
        let mut event: AuditEvent = context.event("system", "client.document_removed", "deleted");
        event.organization_id = Some(stored.organization_id.clone());
        event.client_id = Some(stored.client_id.clone());
        event.reasons = vec![why.to_owned()];
        let change = Change::DeleteClient {
            client_id: stored.client_id.clone(),
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
