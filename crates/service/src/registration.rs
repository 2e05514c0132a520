//! Client registration (RFC 7591 §3) and the client configuration endpoint
//! (RFC 7592 §2): authenticate the bearer credential, validate, decide the
//! credentials, store in one write, and describe the result.

use charter_config::{Issuer, RegistrationConfig};
use charter_policy::{evaluate, Decision, Policy, PolicyState, Profile};
use charter_protocol::{
    validate_registration, validate_update, ClientMetadata, Error as ProtocolError,
};
use charter_store::{
    AuditEvent, ClientRecord, ClientStatus, ClientUpdate, InitialAccessToken, Inserted,
    Organization, Store, TokenHash,
};
use serde_json::{Map, Value};
use std::sync::Arc;

use crate::credentials::{self, Credential, Hasher, Secret};
use crate::statements::{Statements, Vouched};
use crate::Error;

/// The same answer for an unknown client and a wrong token, so the
/// configuration endpoint reveals nothing about which clients exist
/// (RFC 7592 §2, OIDC DCR §4.4).
pub const BAD_RAT: &str = "the registration access token is not valid for this client";

/// Proof that a request carried a valid initial access token, or came
/// without one where the operator allows that; only
/// [`Registrar::authenticate_iat`] makes one, so registration cannot be
/// reached without it.
#[derive(Debug)]
pub struct RegistrationGrant {
    /// The valid initial access token presented; `None` when none was.
    token: Option<InitialAccessToken>,
    /// Without a token, when anonymous registration is enabled: a stand-in
    /// describing the quarantine organization and the anonymous profile
    /// (not a stored token).
    anonymous: Option<InitialAccessToken>,
    /// Without a token: a software statement from a trusted issuer in the
    /// body may stand in for one (checked once the body is read).
    statements: bool,
    /// Instead of a token: a verified workload identity token
    /// (`workloads.rs`).
    workload: Option<crate::workloads::Workload>,
}

impl RegistrationGrant {
    /// A grant for a workload whose token verified.
    pub(crate) fn for_workload(workload: crate::workloads::Workload) -> Self {
        Self {
            token: None,
            anonymous: None,
            statements: false,
            workload: Some(workload),
        }
    }

    /// The id (never the token) of the initial access token, for rate
    /// limits; `None` when no token was presented.
    pub fn token_id(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.id.as_str())
    }

    /// No token, and anonymous registration may admit the request.
    pub fn is_anonymous(&self) -> bool {
        self.token.is_none() && self.anonymous.is_some()
    }

    /// No token, and a trusted software statement may admit the request.
    pub fn may_present_statement(&self) -> bool {
        self.token.is_none() && self.statements
    }

    /// Who answers for the attempt before the body is read: the token, or
    /// anonymous registration; `None` when only a statement could.
    fn actor(&self) -> Option<String> {
        if let Some(workload) = &self.workload {
            return Some(workload.actor());
        }
        match (&self.token, &self.anonymous) {
            (Some(token), _) => Some(format!("iat:{}", token.id)),
            (None, Some(_)) => Some("anonymous".into()),
            (None, None) => None,
        }
    }

    fn organization_id(&self) -> Option<String> {
        if let Some(workload) = &self.workload {
            return Some(workload.organization_id().to_owned());
        }
        self.token
            .as_ref()
            .or(self.anonymous.as_ref())
            .map(|t| t.organization_id.clone())
    }
}

/// What binds a new client: its organization and profile, the initial
/// access token whose use it counts, and who answers for it in the audit log.
struct Binding {
    organization_id: String,
    profile: String,
    token_id: Option<String>,
    actor: String,
    /// Anonymous registration: public clients only.
    anonymous: bool,
    /// The profile came from a trusted issuer's configuration rather than
    /// from a stored token.
    profile_from_statement: bool,
    /// The workload the client is bound to, when one registered it.
    workload: Option<charter_protocol::WorkloadBinding>,
}

/// Proof that a request carried the registration access token of this
/// client; only [`Registrar::authenticate_rat`] makes one.
#[derive(Debug)]
pub struct AuthenticatedClient(pub(crate) ClientRecord);

/// A client's shared secret: in clear only when just issued.
#[derive(Default)]
struct SecretState {
    clear: Option<Secret>,
    hash: Option<TokenHash>,
    expires_at: Option<i64>,
}

/// Registration and management of clients.
pub struct Registrar {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) hasher: Hasher,
    pub(crate) issuer: Issuer,
    pub(crate) config: RegistrationConfig,
    pub(crate) policy: Arc<Policy>,
    pub(crate) lifecycle: charter_config::LifecycleConfig,
    pub(crate) statements: Statements,
    /// `None`: nothing is fetched, and metadata naming URLs to fetch is refused.
    pub(crate) fetcher: Option<charter_fetch::Fetcher>,
    pub(crate) workloads: crate::workloads::Workloads,
}

/// A client information response (RFC 7591 §3.2.1, RFC 7592 §3): the
/// registered metadata plus the server-assigned members. Credentials in
/// clear appear only when they were just issued.
#[derive(Debug)]
pub struct ClientInformation {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_id_issued_at: i64,
    pub client_secret_expires_at: Option<i64>,
    pub registration_access_token: Option<Secret>,
    pub registration_client_uri: String,
    /// Read-only members the client can never set.
    pub organization_id: String,
    pub status: ClientStatus,
    pub metadata: ClientMetadata,
}

impl ClientInformation {
    /// The JSON body: server members first, then every registered value.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("client_id".into(), self.client_id.clone().into());
        if let Some(secret) = &self.client_secret {
            body.insert("client_secret".into(), secret.expose().into());
        }
        body.insert(
            "client_id_issued_at".into(),
            self.client_id_issued_at.into(),
        );
        if let Some(expires) = self.client_secret_expires_at {
            body.insert("client_secret_expires_at".into(), expires.into());
        }
        if let Some(rat) = &self.registration_access_token {
            body.insert("registration_access_token".into(), rat.expose().into());
        }
        body.insert(
            "registration_client_uri".into(),
            self.registration_client_uri.clone().into(),
        );
        body.insert(
            "organization_id".into(),
            self.organization_id.clone().into(),
        );
        body.insert("status".into(), self.status.as_str().into());
        if let Ok(Value::Object(metadata)) = serde_json::to_value(&self.metadata) {
            body.extend(metadata);
        }
        Value::Object(body)
    }
}

impl Registrar {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Hasher,
        issuer: Issuer,
        config: RegistrationConfig,
        policy: Arc<Policy>,
    ) -> Self {
        Self {
            store,
            hasher,
            issuer,
            config,
            policy,
            lifecycle: charter_config::LifecycleConfig::default(),
            statements: Statements::default(),
            fetcher: None,
            workloads: Default::default(),
        }
    }

    /// The fetcher that vets and fetches URLs clients register
    /// (`jwks_uri`, `sector_identifier_uri`).
    pub fn with_fetcher(mut self, fetcher: charter_fetch::Fetcher) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// URLs in `metadata` the server would fetch, checked before anything
    /// is stored (issue 6: fail early).
    async fn check_remote(
        &self,
        profile: &charter_policy::Profile,
        metadata: &ClientMetadata,
    ) -> Result<(), Error> {
        if metadata.jwks_uri.is_none() && metadata.sector_identifier_uri.is_none() {
            return Ok(());
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(ProtocolError::invalid_metadata(
                "jwks_uri and sector_identifier_uri cannot be used: this server fetches nothing",
            )
            .into());
        };
        crate::remote::check_remote_metadata(fetcher, profile, metadata).await
    }

    /// The outbound fetcher's counters, if the server fetches at all.
    pub fn fetch_stats(&self) -> Option<charter_fetch::Stats> {
        self.fetcher.as_ref().map(charter_fetch::Fetcher::stats)
    }

    /// Sets the lifecycle rules (secret rotation overlap, the reaper's periods).
    pub fn with_lifecycle(mut self, lifecycle: charter_config::LifecycleConfig) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The `registration_client_uri` of a client (RFC 7592 §3).
    pub fn client_uri(&self, client_id: &str) -> String {
        self.issuer.endpoint(&format!("/register/{client_id}"))
    }

    /// RFC 7591 §3: registers a client under the organization of the
    /// presented initial access token, or of the trusted issuer whose
    /// software statement the request carries (RFC 7591 §2.3), or, where
    /// enabled, anonymously.
    ///
    /// Every attempt that a valid token, anonymous registration or a
    /// verified statement admitted is audited: an admission in the
    /// transaction that stores the client, a refusal on its own. The audit
    /// entry names a statement's issuer and `software_id`.
    pub async fn register(
        &self,
        grant: RegistrationGrant,
        body: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<ClientInformation, Error> {
        let vouched = match self.verify_statement(body).await {
            Ok(vouched) => vouched,
            Err(e) => {
                // Nobody vouched for a caller without a token (or anonymous
                // registration): like a bad token, its refusal is not written.
                self.audit_registration_refusal(
                    grant.actor(),
                    grant.organization_id(),
                    Vec::new(),
                    &e,
                    context,
                )
                .await?;
                return Err(e);
            }
        };
        let provenance: Vec<String> = grant
            .workload
            .iter()
            .map(|w| w.audit_reason())
            .chain(vouched.iter().map(|v| v.statement.audit_reason()))
            .collect();
        let binding = match self.bind(&grant, vouched.as_ref()).await {
            Ok(binding) => binding,
            Err(e) => {
                let actor = grant
                    .actor()
                    .or_else(|| vouched.as_ref().map(Vouched::actor));
                self.audit_registration_refusal(
                    actor,
                    grant.organization_id(),
                    provenance,
                    &e,
                    context,
                )
                .await?;
                return Err(e);
            }
        };
        let statement = vouched.as_ref().map(|v| &v.statement);
        let result = self
            .decide_and_register(&binding, statement, body, context, provenance.clone())
            .await;
        if let Err(e) = &result {
            self.audit_registration_refusal(
                Some(binding.actor.clone()),
                Some(binding.organization_id.clone()),
                provenance,
                e,
                context,
            )
            .await?;
        }
        result
    }

    /// The organization and profile a new client is bound to.
    ///
    /// A trusted statement binds it to its issuer's organization and
    /// profile exactly as an initial access token would. With a token as
    /// well, both must agree on the organization (the token's holder
    /// cannot register into another organization by presenting a partner's
    /// statement), and the issuer's profile applies.
    async fn bind(
        &self,
        grant: &RegistrationGrant,
        vouched: Option<&Vouched>,
    ) -> Result<Binding, Error> {
        let from_token = |token: &InitialAccessToken| Binding {
            organization_id: token.organization_id.clone(),
            profile: token.profile.clone(),
            token_id: Some(token.id.clone()),
            actor: format!("iat:{}", token.id),
            anonymous: false,
            profile_from_statement: false,
            workload: None,
        };
        // A workload token binds the client to the trust source's
        // organization and profile, and to the workload itself.
        if let Some(workload) = &grant.workload {
            self.check_workload_statement(workload, vouched).await?;
            return Ok(Binding {
                organization_id: workload.organization_id().to_owned(),
                profile: workload.profile().to_owned(),
                token_id: None,
                actor: workload.actor(),
                anonymous: false,
                profile_from_statement: true,
                workload: Some(workload.binding()),
            });
        }
        match (&grant.token, vouched) {
            (Some(token), None) => Ok(from_token(token)),
            (Some(token), Some(vouched)) => {
                let organization = self.issuer_organization(&vouched.issuer).await?;
                if organization.id != token.organization_id {
                    return Err(ProtocolError::new(
                        charter_protocol::ErrorCode::UnapprovedSoftwareStatement,
                        format!(
                            "software_statement: issuer {:?} registers clients into organization {:?}, but the initial access token belongs to another organization",
                            vouched.issuer.issuer, vouched.issuer.organization
                        ),
                    )
                    .into());
                }
                Ok(Binding {
                    profile: vouched.issuer.profile.clone(),
                    profile_from_statement: true,
                    ..from_token(token)
                })
            }
            (None, Some(vouched)) => {
                let organization = self.issuer_organization(&vouched.issuer).await?;
                Ok(Binding {
                    organization_id: organization.id,
                    profile: vouched.issuer.profile.clone(),
                    token_id: None,
                    actor: vouched.actor(),
                    anonymous: false,
                    profile_from_statement: true,
                    workload: None,
                })
            }
            (None, None) => match &grant.anonymous {
                Some(stand_in) => Ok(Binding {
                    token_id: None,
                    actor: "anonymous".into(),
                    anonymous: true,
                    ..from_token(stand_in)
                }),
                // Without a token, only a statement could have admitted
                // the request, and it carried none: the bare challenge.
                None => Err(Error::MissingToken),
            },
        }
    }

    /// Audits a refused registration on behalf of `actor`; without one
    /// (nobody vouched for the caller) nothing is written.
    async fn audit_registration_refusal(
        &self,
        actor: Option<String>,
        organization_id: Option<String>,
        reasons: Vec<String>,
        error: &Error,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let Some(actor) = actor else {
            return Ok(());
        };
        let mut event = context.event(actor, "client.register", "refused");
        event.organization_id = organization_id;
        event.reasons = reasons;
        self.audit_refusal(event, error).await
    }

    /// Appends a refusal to the audit log, its reasons after any already
    /// on the event; internal errors are not refusals.
    async fn audit_refusal(&self, mut event: AuditEvent, error: &Error) -> Result<(), Error> {
        let reasons: Vec<String> = match error {
            Error::Protocol(e) => e.description.split("; ").map(str::to_owned).collect(),
            Error::InvalidToken(why) => vec![(*why).to_owned()],
            Error::MissingToken
            | Error::Internal(_)
            | Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::Conflict(_)
            | Error::InvalidClient { .. }
            | Error::DpopNonce { .. }
            | Error::ResourceDpop { .. } => return Ok(()),
        };
        event.reasons.extend(reasons);
        event.policy_version = Some(self.policy.version.clone());
        self.store.append_audit(event).await?;
        Ok(())
    }

    async fn decide_and_register(
        &self,
        binding: &Binding,
        statement: Option<&charter_protocol::SoftwareStatement>,
        body: &Map<String, Value>,
        context: &RequestContext,
        provenance: Vec<String>,
    ) -> Result<ClientInformation, Error> {
        // RFC 7591 §2.3: the statement's values take precedence, so they
        // are merged over the JSON members before the usual validation.
        let mut metadata = match statement {
            Some(statement) => statement.validate_registration(body)?,
            None => validate_registration(body)?,
        };
        if let Some(workload) = &binding.workload {
            // The workload's token proves who registers, not who will use
            // the client: a public client could be used by anyone.
            if metadata.token_endpoint_auth_method == charter_protocol::AuthMethod::None {
                return Err(ProtocolError::invalid_metadata(
                    "token_endpoint_auth_method: a workload registers confidential clients only, so \"none\" is refused",
                )
                .into());
            }
            // Set before the policy decides, so a profile that requires a
            // workload sees it (validation never takes it from the body).
            metadata.workload_identity = Some(workload.clone());
        }
        // Anonymous registration admits public clients only: no secret is
        // ever handed to a caller nobody vouched for.
        if binding.anonymous
            && metadata.token_endpoint_auth_method != charter_protocol::AuthMethod::None
        {
            return Err(ProtocolError::invalid_metadata(
                "token_endpoint_auth_method: anonymous registration admits only public clients (\"none\"), so present an initial access token for anything else",
            )
            .into());
        }
        let profile = self.policy.profile(&binding.profile).ok_or_else(|| {
            if binding.profile_from_statement {
                Error::Internal(format!(
                    "the software statement issuer's profile {:?} is not defined",
                    binding.profile
                ))
            } else {
                Error::InvalidToken(
                    "the initial access token names a policy profile that is no longer defined",
                )
            }
        })?;
        let organization_client_count = match profile.max_clients_per_organization {
            Some(_) => {
                self.store
                    .organization_client_count(&binding.organization_id)
                    .await?
            }
            None => 0,
        };
        let state = PolicyState {
            organization_client_count,
            is_update: false,
        };
        let (metadata, status, reasons) = match evaluate(metadata, profile, state) {
            Decision::Admit {
                metadata,
                substitutions,
            } => {
                log_substitutions(&substitutions);
                (metadata, ClientStatus::Active, substitutions)
            }
            Decision::Pending {
                metadata,
                substitutions,
                reasons,
            } => {
                log_substitutions(&substitutions);
                tracing::info!(profile = %profile.name, reasons = %reasons.join("; "), "registration pending approval");
                (
                    metadata,
                    ClientStatus::Pending,
                    [reasons, substitutions].concat(),
                )
            }
            Decision::Refuse(e) => return Err(e.into()),
        };
        self.check_remote(profile, &metadata).await?;
        let now = crate::now();
        let expires_at = now + profile.client_lifetime.as_secs() as i64;
        let client_id = credentials::random_id()?;
        let rat = credentials::generate(Credential::RegistrationAccessToken)?;
        let SecretState {
            clear: secret,
            hash: secret_hash,
            expires_at: secret_expires_at,
        } = self.new_secret(&metadata, profile, now, expires_at)?;
        let record = ClientRecord {
            client_id: client_id.clone(),
            organization_id: binding.organization_id.clone(),
            initial_access_token_id: binding.token_id.clone(),
            metadata: serde_json::to_value(&metadata)
                .map_err(|e| Error::Internal(e.to_string()))?,
            secret_hash,
            secret_expires_at,
            registration_token_hash: self
                .hasher
                .hash(Credential::RegistrationAccessToken, rat.expose()),
            issued_at: now,
            updated_at: now,
            profile: profile.name.clone(),
            policy_version: self.policy.version.clone(),
            status,
            expires_at: Some(expires_at),
            approval: None,
            approved_until: None,
            last_used_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            document: None,
        };
        let mut event = context.event(
            binding.actor.clone(),
            "client.register",
            decision_name(status),
        );
        event.organization_id = Some(binding.organization_id.clone());
        event.client_id = Some(client_id.clone());
        event.reasons = [provenance, reasons].concat();
        event.policy_version = Some(self.policy.version.clone());
        // The quota was checked by the policy already; the store checks it
        // again inside the insert's transaction, where it is exact.
        match self
            .store
            .insert_client(record, profile.max_clients_per_organization, event)
            .await?
        {
            Inserted::Stored => {}
            Inserted::CredentialExhausted => {
                return Err(Error::InvalidToken(
                    "the initial access token has no registrations left",
                ))
            }
            Inserted::QuotaExceeded => {
                return Err(ProtocolError::invalid_metadata(format!(
                    "organization: has reached the {} clients profile {:?} allows",
                    profile.max_clients_per_organization.unwrap_or_default(),
                    profile.name
                ))
                .into())
            }
        }
        tracing::info!(client_id = %client_id, profile = %profile.name, status = status.as_str(), "client registered");
        Ok(ClientInformation {
            registration_client_uri: self.client_uri(&client_id),
            client_id,
            client_secret: secret,
            client_id_issued_at: now,
            client_secret_expires_at: secret_expires_at,
            registration_access_token: Some(rat),
            organization_id: binding.organization_id.clone(),
            status,
            metadata,
        })
    }

    /// RFC 7592 §2.1: the current registration.
    pub async fn read(&self, client: AuthenticatedClient) -> Result<ClientInformation, Error> {
        let AuthenticatedClient(client) = client;
        self.describe(client, None, None)
    }

    /// RFC 7592 §2.2: replaces the client's metadata with the request's.
    pub async fn update(
        &self,
        client: AuthenticatedClient,
        body: &Map<String, Value>,
        context: &RequestContext,
    ) -> Result<ClientInformation, Error> {
        let AuthenticatedClient(client) = client;
        let mut event = context.event(
            format!("client:{}", client.client_id),
            "client.update",
            "refused",
        );
        event.organization_id = Some(client.organization_id.clone());
        event.client_id = Some(client.client_id.clone());
        let result = match self.update_statement(&client, body).await {
            Ok(statement) => {
                if let Some(statement) = &statement {
                    event.reasons.push(statement.audit_reason());
                }
                self.replace(client, body, statement.as_ref(), event.clone())
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.audit_refusal(event, e).await?;
        }
        result
    }

    async fn replace(
        &self,
        client: ClientRecord,
        body: &Map<String, Value>,
        statement: Option<&charter_protocol::SoftwareStatement>,
        mut event: AuditEvent,
    ) -> Result<ClientInformation, Error> {
        let client_id = client.client_id.clone();
        let client_id = client_id.as_str();
        let mut request = match statement {
            Some(statement) => statement.validate_update(body, client_id)?,
            None => validate_update(body, client_id)?,
        };
        // The workload binding is the server's, never the request's: kept.
        request.metadata.workload_identity = crate::workloads::stored_binding(&client)?;
        if let Some(presented) = &request.client_secret {
            let matches = client.secret_hash.is_some_and(|stored| {
                self.hasher
                    .verify(Credential::ClientSecret, presented, &stored)
            });
            if !matches {
                return Err(ProtocolError::invalid_request(
                    "client_secret: does not match the client's current secret; a client cannot choose its secret (RFC 7592 §2.2)",
                )
                .into());
            }
        }
        let profile = self.policy.profile(&client.profile).ok_or_else(|| {
            ProtocolError::invalid_metadata(format!(
                "the client's policy profile {:?} is no longer defined; an administrator must move the client first",
                client.profile
            ))
        })?;
        let state = PolicyState {
            organization_client_count: 0,
            is_update: true,
        };
        let metadata = match evaluate(request.metadata, profile, state) {
            Decision::Admit {
                metadata,
                substitutions,
            } => {
                log_substitutions(&substitutions);
                metadata
            }
            // evaluate() never leaves an update pending; treat it as a refusal if it did.
            Decision::Pending { reasons, .. } => {
                return Err(ProtocolError::invalid_metadata(reasons.join("; ")).into())
            }
            Decision::Refuse(e) => return Err(e.into()),
        };
        self.check_remote(profile, &metadata).await?;
        let now = crate::now();
        let client_expires_at = client.expires_at.unwrap_or(i64::MAX);
        // A confidential client keeps its secret; one that becomes
        // confidential gets a new one; one that stops using it loses it.
        let SecretState {
            clear: new_secret,
            hash: secret_hash,
            expires_at: secret_expires_at,
        } = match (metadata.needs_secret(), client.secret_hash) {
            // An expired secret is replaced: the update response is the one
            // place RFC 7592 §2.2 lets the server hand out a new one.
            (true, Some(_)) if client.secret_expires_at.is_some_and(|at| at <= now) => {
                self.new_secret(&metadata, profile, now, client_expires_at)?
            }
            (true, Some(hash)) => SecretState {
                clear: None,
                hash: Some(hash),
                expires_at: client.secret_expires_at,
            },
            (true, None) => self.new_secret(&metadata, profile, now, client_expires_at)?,
            (false, _) => SecretState::default(),
        };
        let (new_rat, rat_hash) = if self.config.rotate_registration_access_token_on_update {
            let rat = credentials::generate(Credential::RegistrationAccessToken)?;
            let hash = self
                .hasher
                .hash(Credential::RegistrationAccessToken, rat.expose());
            (Some(rat), hash)
        } else {
            (None, client.registration_token_hash)
        };
        let updated = self
            .store
            .update_client(
                ClientUpdate {
                    client_id: client_id.to_owned(),
                    expected_registration_token_hash: client.registration_token_hash,
                    metadata: serde_json::to_value(&metadata)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                    secret_hash,
                    secret_expires_at,
                    registration_token_hash: rat_hash,
                    updated_at: now,
                    policy_version: self.policy.version.clone(),
                },
                {
                    event.decision = "done".into();
                    event.policy_version = Some(self.policy.version.clone());
                    event
                },
            )
            .await?;
        if !updated {
            // A concurrent update rotated the token or a delete removed the client.
            return Err(Error::InvalidToken(BAD_RAT));
        }
        tracing::info!(client_id = %client_id, rotated_rat = new_rat.is_some(), "client updated");
        let record = ClientRecord {
            secret_expires_at,
            ..client
        };
        let mut info = self.describe(record, new_secret, new_rat)?;
        info.metadata = metadata;
        Ok(info)
    }

    /// RFC 7592 §2.3: deletes the client; its token dies with it.
    pub async fn delete(
        &self,
        client: AuthenticatedClient,
        context: &RequestContext,
    ) -> Result<(), Error> {
        let AuthenticatedClient(client) = client;
        let client_id = client.client_id.as_str();
        let mut event = context.event(format!("client:{client_id}"), "client.delete", "done");
        event.organization_id = Some(client.organization_id.clone());
        event.client_id = Some(client_id.to_owned());
        if !self
            .store
            .delete_client(client_id, &client.registration_token_hash, event)
            .await?
        {
            return Err(Error::InvalidToken(BAD_RAT));
        }
        tracing::info!(client_id = %client_id, "client deleted");
        Ok(())
    }

    /// A fresh secret for a client that uses one; none for the others.
    /// The secret expires with the profile's secret lifetime, and never after the client.
    fn new_secret(
        &self,
        metadata: &ClientMetadata,
        profile: &Profile,
        now: i64,
        client_expires_at: i64,
    ) -> Result<SecretState, Error> {
        if !metadata.needs_secret() {
            return Ok(SecretState::default());
        }
        let secret = credentials::generate(Credential::ClientSecret)?;
        Ok(SecretState {
            hash: Some(self.hasher.hash(Credential::ClientSecret, secret.expose())),
            expires_at: Some(
                (now + profile.secret_lifetime.as_secs() as i64).min(client_expires_at),
            ),
            clear: Some(secret),
        })
    }

    pub(crate) fn describe(
        &self,
        client: ClientRecord,
        secret: Option<Secret>,
        rat: Option<Secret>,
    ) -> Result<ClientInformation, Error> {
        let metadata: ClientMetadata = serde_json::from_value(client.metadata).map_err(|e| {
            Error::Internal(format!(
                "stored metadata of {} is unreadable: {e}",
                client.client_id
            ))
        })?;
        Ok(ClientInformation {
            registration_client_uri: self.client_uri(&client.client_id),
            client_id: client.client_id,
            client_secret: secret,
            client_id_issued_at: client.issued_at,
            client_secret_expires_at: client.secret_expires_at,
            registration_access_token: rat,
            organization_id: client.organization_id,
            status: client.status,
            metadata,
        })
    }

    /// Checks an initial access token (RFC 7591 §3): known, unrevoked, unexpired.
    /// `source` is the caller's address, checked against the token's
    /// allowed network.
    pub async fn authenticate_iat(
        &self,
        presented: Option<&str>,
        source: Option<std::net::IpAddr>,
    ) -> Result<RegistrationGrant, Error> {
        let Some(presented) = presented else {
            return self.tokenless_grant().await;
        };
        let hash = self.hasher.hash(Credential::InitialAccessToken, presented);
        let token = self
            .store
            .initial_access_token_by_hash(&hash)
            .await?
            .ok_or(Error::InvalidToken("the initial access token is not valid"))?;
        // The lookup matched on the hash; compare again in constant time so
        // correctness never rests on the database's comparison alone.
        if !self
            .hasher
            .verify(Credential::InitialAccessToken, presented, &token.token_hash)
        {
            return Err(Error::InvalidToken("the initial access token is not valid"));
        }
        if let Some(cidr) = &token.allowed_cidr {
            let allowed = cidr
                .parse::<ipnet::IpNet>()
                .ok()
                .zip(source)
                .is_some_and(|(net, ip)| net.contains(&ip));
            if !allowed {
                return Err(Error::InvalidToken(
                    "the initial access token is not valid from this address",
                ));
            }
        }
        // The organization must be active: a suspended or offboarded
        // organization registers nothing, whatever tokens it still holds.
        let organization = self
            .store
            .organization_by_id(&token.organization_id)
            .await?;
        if organization.is_none_or(|o| o.status != "active") {
            return Err(Error::InvalidToken(
                "the initial access token's organization is not active",
            ));
        }
        if token.revoked {
            return Err(Error::InvalidToken(
                "the initial access token has been revoked",
            ));
        }
        if token.expires_at.is_some_and(|at| at <= crate::now()) {
            return Err(Error::InvalidToken("the initial access token has expired"));
        }
        Ok(RegistrationGrant {
            token: Some(token),
            anonymous: None,
            statements: false,
            workload: None,
        })
    }

    /// Without a token: a grant that anonymous registration (for the
    /// quarantine organization under the anonymous profile) or a trusted
    /// software statement in the body may use, when the operator enabled
    /// either; otherwise the bare 401 challenge, before any body is read.
    async fn tokenless_grant(&self) -> Result<RegistrationGrant, Error> {
        let anonymous = self.anonymous_stand_in().await?;
        let statements = self.accepts_software_statements();
        if anonymous.is_none() && !statements {
            return Err(Error::MissingToken);
        }
        Ok(RegistrationGrant {
            token: None,
            anonymous,
            statements,
            workload: None,
        })
    }

    /// The stand-in token of anonymous registration, when it is enabled and
    /// its quarantine organization is active.
    async fn anonymous_stand_in(&self) -> Result<Option<InitialAccessToken>, Error> {
        let Some(anonymous) = &self.config.anonymous else {
            return Ok(None);
        };
        let Some(organization) = self
            .store
            .organization_by_name(&anonymous.organization)
            .await?
            .filter(|o| o.status == "active")
        else {
            return Ok(None);
        };
        Ok(Some(InitialAccessToken {
            id: "anonymous".into(),
            organization_id: organization.id,
            token_hash: [0; 32],
            created_at: 0,
            expires_at: None,
            revoked: false,
            profile: anonymous.profile.clone(),
            max_uses: None,
            uses: 0,
            allowed_cidr: None,
        }))
    }

    /// Creates the quarantine organization of anonymous registration if it
    /// is enabled and the organization does not exist yet.
    pub async fn ensure_quarantine_organization(&self) -> Result<(), Error> {
        match &self.config.anonymous {
            Some(anonymous) => self.ensure_organization(&anonymous.organization).await,
            None => Ok(()),
        }
    }

    /// Creates the organization `name` if it does not exist yet (an
    /// organization the configuration puts clients nobody vouched for in).
    pub async fn ensure_organization(&self, name: &str) -> Result<(), Error> {
        if self.store.organization_by_name(name).await?.is_some() {
            return Ok(());
        }
        let context = RequestContext {
            admin: Some("system".into()),
            ..Default::default()
        };
        match self.create_organization(name, &context).await {
            Ok(_) => Ok(()),
            // Another replica created it first.
            Err(Error::Protocol(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Checks the registration access token against the client the URI
    /// names (RFC 7592 §2); the same error for an unknown client and a wrong
    /// token.
    pub async fn authenticate_rat(
        &self,
        client_id: &str,
        presented: Option<&str>,
    ) -> Result<AuthenticatedClient, Error> {
        let presented = presented.ok_or(Error::MissingToken)?;
        // Hash before the lookup so an unknown client costs the same work.
        let hash = self
            .hasher
            .hash(Credential::RegistrationAccessToken, presented);
        let client = self.store.client(client_id).await?;
        match client {
            Some(client)
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    &hash[..],
                    &client.registration_token_hash[..],
                )) =>
            {
                Ok(AuthenticatedClient(client))
            }
            _ => Err(Error::InvalidToken(BAD_RAT)),
        }
    }

    /// Admin: an initial access token for an organization, bound to a
    /// policy profile (the default one when `None`) and optionally limited
    /// to `max_uses` registrations; shown once.
    pub async fn issue_initial_access_token(
        &self,
        organization: &str,
        lifetime_secs: i64,
        profile: Option<&str>,
        max_uses: Option<i64>,
        allowed_cidr: Option<&str>,
        context: &RequestContext,
    ) -> Result<(InitialAccessToken, Secret), Error> {
        if let Some(cidr) = allowed_cidr {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                return Err(ProtocolError::invalid_request(format!(
                    "allowed_cidr: {cidr:?} is not a network; write e.g. 10.0.0.0/8 or 2001:db8::/32"
                ))
                .into());
            }
        }
        let profile = profile.unwrap_or(&self.policy.default_profile);
        if self.policy.profile(profile).is_none() {
            return Err(ProtocolError::invalid_request(format!(
                "profile: {profile:?} is not a defined policy profile"
            ))
            .into());
        }
        if max_uses.is_some_and(|n| n < 1) {
            return Err(ProtocolError::invalid_request("max_uses: must be at least 1").into());
        }
        let org: Organization = self.organization(organization).await?;
        let now = crate::now();
        let secret = credentials::generate(Credential::InitialAccessToken)?;
        let token = InitialAccessToken {
            id: format!("iat_{}", credentials::random_id()?),
            organization_id: org.id,
            token_hash: self
                .hasher
                .hash(Credential::InitialAccessToken, secret.expose()),
            created_at: now,
            expires_at: Some(now + lifetime_secs),
            revoked: false,
            profile: profile.to_owned(),
            max_uses,
            uses: 0,
            allowed_cidr: allowed_cidr.map(str::to_owned),
        };
        self.store
            .insert_initial_access_token(token.clone(), {
                let mut event = context.admin_event("iat.issue", "done");
                event.organization_id = Some(token.organization_id.clone());
                event.reasons = vec![format!(
                    "iat {} for profile {:?}, max_uses {:?}",
                    token.id, token.profile, token.max_uses
                )];
                event
            })
            .await?;
        Ok((token, secret))
    }

    /// Admin dry run: the decision a registration of `body` under `profile`
    /// in `organization` would get now, creating nothing.
    pub async fn check_policy(
        &self,
        organization: &str,
        profile: &str,
        body: &Map<String, Value>,
    ) -> Result<Value, Error> {
        let org = self.organization(organization).await?;
        let state = PolicyState {
            organization_client_count: self.store.organization_client_count(&org.id).await?,
            is_update: false,
        };
        Ok(crate::policy_check(&self.policy, profile, body, state))
    }

    /// Admin: verify the audit chain.
    pub async fn verify_audit(&self) -> Result<crate::audit::Verification, Error> {
        crate::audit::verify(self.store.as_ref()).await
    }

    /// Admin: audit entries after `after`, at most `limit`, optionally only
    /// those about one client, organization or actor.
    pub async fn audit_entries(
        &self,
        after: i64,
        limit: u32,
        filter: &AuditFilter,
    ) -> Result<Vec<Value>, Error> {
        crate::audit::query(self.store.as_ref(), after, limit.min(1000), filter).await
    }

    /// The identity and role behind an admin token, if it is one.
    pub async fn admin(&self, presented: &str) -> Result<Option<AdminIdentity>, Error> {
        let found = self
            .store
            .admin_token(&self.hasher.hash(Credential::AdminToken, presented))
            .await?;
        Ok(found.and_then(|(id, role)| {
            Some(AdminIdentity {
                id,
                role: AdminRole::parse(&role)?,
            })
        }))
    }

    /// Admin: a new admin token with `role`, shown once.
    pub async fn issue_admin_token(
        &self,
        role: AdminRole,
        issuer: &AdminIdentity,
        context: &RequestContext,
    ) -> Result<(String, Secret), Error> {
        let secret = credentials::generate(Credential::AdminToken)?;
        let id = format!("adm_{}", credentials::random_id()?);
        let mut event = context.event(issuer.actor(), "admin_token.issue", "done");
        event.reasons = vec![format!("admin token {id} with role {}", role.as_str())];
        let change = charter_store::Change::InsertAdminToken {
            id: id.clone(),
            token_hash: self.hasher.hash(Credential::AdminToken, secret.expose()),
            role: role.as_str().to_owned(),
            created_at: crate::now(),
        };
        self.store.apply_change(change, event).await?;
        Ok((id, secret))
    }
}

fn decision_name(status: ClientStatus) -> &'static str {
    match status {
        ClientStatus::Active => "admitted",
        ClientStatus::Pending => "pending",
        ClientStatus::Rejected => "rejected",
        ClientStatus::Revoked => "revoked",
        ClientStatus::Expired => "expired",
    }
}

/// What an admin token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminRole {
    /// Read organizations, tokens' usage, the audit log; dry-run policy.
    ReadOnly,
    /// Also approve and reject pending clients.
    Approver,
    /// Everything: organizations, tokens, admin tokens.
    Admin,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::ReadOnly => "read_only",
            AdminRole::Approver => "approver",
            AdminRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read_only" => Some(AdminRole::ReadOnly),
            "approver" => Some(AdminRole::Approver),
            "admin" => Some(AdminRole::Admin),
            _ => None,
        }
    }
}

/// An authenticated admin token.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub id: String,
    pub role: AdminRole,
}

impl AdminIdentity {
    /// The audit actor: `admin:<token id>`.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.id)
    }

    /// Refuses an action that needs more than this token's role.
    pub fn require(&self, needed: AdminRole) -> Result<(), Error> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this admin token's role {} cannot do this; it needs {}",
                self.role.as_str(),
                needed.as_str()
            )))
        }
    }
}

/// Which audit entries to return.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditFilter {
    pub client_id: Option<String>,
    pub organization_id: Option<String>,
    pub actor: Option<String>,
    pub since: Option<i64>,
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub source: Option<String>,
    pub request_id: Option<String>,
    /// The admin token acting, for admin actions (`admin:<id>`).
    pub admin: Option<String>,
}

impl RequestContext {
    /// The same request, acting as `admin`.
    pub fn acting_as(mut self, admin: &AdminIdentity) -> Self {
        self.admin = Some(admin.actor());
        self
    }

    /// An audit event for an admin action of this request.
    pub fn admin_event(&self, action: &str, decision: &str) -> AuditEvent {
        self.event(
            self.admin.clone().unwrap_or_else(|| "admin".into()),
            action,
            decision,
        )
    }

    /// An audit event for this request, now.
    pub fn event(&self, actor: impl Into<String>, action: &str, decision: &str) -> AuditEvent {
        let mut event = AuditEvent::new(crate::now(), actor, action, decision);
        event.source = self.source.clone();
        event.request_id = self.request_id.clone();
        event
    }
}

fn log_substitutions(substitutions: &[String]) {
    if !substitutions.is_empty() {
        tracing::info!(substitutions = %substitutions.join("; "), "policy substituted requested values");
    }
}
