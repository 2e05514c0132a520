//! The storage interface: domain records and the [`Store`] trait that every
//! backend implements (`charter-store-sqlite`, `charter-store-postgres`).
//!
//! Records carry hashes, never credentials: secrets, registration access
//! tokens and initial access tokens reach this layer only as keyed hashes
//! computed by the service layer. Every method that changes more than one row
//! does so in one transaction; a method either happens entirely or not at all.

use async_trait::async_trait;

pub mod audit;
pub mod contract;
pub mod users;

pub use audit::{AuditEvent, AuditRecord};
pub use users::{
    AuthorizationCode, Consent, Grant, GrantAccessToken, Interaction, Issue, RefreshToken, Session,
    User,
};

/// Seconds since the Unix epoch, the unit of every timestamp in the protocol.
pub type UnixTime = i64;

/// A keyed hash of a bearer credential (HMAC-SHA-256 output).
pub type TokenHash = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: UnixTime,
    /// `active`, `suspended` or `offboarded`.
    pub status: String,
}

/// A governance change that is not a registration or a management
/// operation; each is applied with its audit entry in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A pending client becomes active; `approval` is the JSON approval record.
    ApproveClient {
        client_id: String,
        approval: String,
        /// When the approval lapses and the client needs re-approval.
        until: Option<UnixTime>,
    },
    /// A pending client is rejected; `approval` records who and why.
    RejectClient {
        client_id: String,
        approval: String,
    },
    /// An active organization is suspended, or a suspended one resumed.
    SetOrganizationStatus {
        organization_id: String,
        from: String,
        to: String,
    },
    /// The organization is offboarded: its clients are revoked and its
    /// initial access tokens revoked, all at once.
    OffboardOrganization {
        organization_id: String,
    },
    RevokeInitialAccessToken {
        id: String,
    },
    /// An active client whose approval lapsed before `now` goes back to pending.
    LapseApproval {
        client_id: String,
        now: UnixTime,
    },
    /// An active or pending client is expired now (past its lifetime, or
    /// never used): status `expired`, `expires_at` lowered to `now`.
    ExpireClient {
        client_id: String,
        now: UnixTime,
    },
    /// An active or pending client is revoked by an administrator.
    RevokeClient {
        client_id: String,
    },
    /// The client is deleted whatever its credentials (administrator or
    /// reaper), with its consents, codes, grants and refresh tokens.
    DeleteClient {
        client_id: String,
    },
    /// A metadata-document client whose document is gone or refused is
    /// deleted like [`Change::DeleteClient`], but only while its stored
    /// document is still `expected_digest` and its status is active,
    /// pending or expired (an administrator's revocation or rejection
    /// stands).
    RemoveDocumentClient {
        client_id: String,
        expected_digest: TokenHash,
    },
    /// The client gets a new secret; the current one stays valid until
    /// `previous_expires_at` (the rotation overlap). Applies only while the
    /// client's secret is still `expected_secret_hash`.
    RotateSecret {
        client_id: String,
        expected_secret_hash: TokenHash,
        secret_hash: TokenHash,
        secret_expires_at: UnixTime,
        previous_expires_at: UnixTime,
    },
    /// An access token is revoked until it would have expired anyway.
    RevokeAccessToken {
        jti: String,
        client_id: String,
        expires_at: UnixTime,
    },
    /// A new admin token with a role (`read_only`, `approver` or `admin`).
    InsertAdminToken {
        id: String,
        token_hash: TokenHash,
        role: String,
        created_at: UnixTime,
    },
    /// An end user is disabled (their sessions end and every grant they
    /// made is revoked, with its access tokens) or enabled again.
    SetUserDisabled {
        user_id: String,
        disabled: bool,
    },
    /// A user's remembered consent for a client is withdrawn, and every
    /// grant of that user to that client revoked with its access tokens.
    RevokeConsent {
        user_id: String,
        client_id: String,
    },
    /// A grant is revoked: its refresh tokens stop working and its access
    /// tokens are recorded as revoked. If the grant does not exist yet (a
    /// replayed code racing its first redemption) a revoked grant is
    /// recorded, so the first redemption cannot store it afterwards.
    RevokeGrant {
        grant_id: String,
        client_id: String,
        user_id: String,
        now: UnixTime,
    },
}

/// An initial access token (RFC 7591 §1.2), bound to an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialAccessToken {
    pub id: String,
    pub organization_id: String,
    pub token_hash: TokenHash,
    pub created_at: UnixTime,
    /// `None` means the token does not expire.
    pub expires_at: Option<UnixTime>,
    pub revoked: bool,
    /// The policy profile its registrations are decided under.
    pub profile: String,
    /// Most registrations it may make; `None` for no limit.
    pub max_uses: Option<i64>,
    /// Registrations made so far, counted in the transaction that stores each client.
    pub uses: i64,
    /// The network registrations must come from (CIDR, e.g. `10.0.0.0/8`).
    pub allowed_cidr: Option<String>,
}

/// Where a client stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    /// Usable.
    Active,
    /// Registered, waiting for an administrator's approval; not usable.
    Pending,
    /// Refused by an administrator; never usable.
    Rejected,
    /// Revoked (for example with its organization); never usable again.
    Revoked,
    /// Never decided within the pending lifetime; never usable.
    Expired,
}

impl ClientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Active => "active",
            ClientStatus::Pending => "pending",
            ClientStatus::Rejected => "rejected",
            ClientStatus::Revoked => "revoked",
            ClientStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(ClientStatus::Active),
            "pending" => Some(ClientStatus::Pending),
            "rejected" => Some(ClientStatus::Rejected),
            "revoked" => Some(ClientStatus::Revoked),
            "expired" => Some(ClientStatus::Expired),
            _ => None,
        }
    }
}

/// A registered client. `metadata` is the validated metadata as JSON
/// (`charter_protocol::ClientMetadata`); the columns beside it are what the
/// server itself decides and what queries need.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    pub client_id: String,
    pub organization_id: String,
    /// The initial access token the client registered with.
    pub initial_access_token_id: Option<String>,
    pub metadata: serde_json::Value,
    pub secret_hash: Option<TokenHash>,
    /// `Some(0)` never happens: every secret expires. `None` when no secret.
    pub secret_expires_at: Option<UnixTime>,
    pub registration_token_hash: TokenHash,
    pub issued_at: UnixTime,
    pub updated_at: UnixTime,
    /// The policy profile and version that admitted the client.
    pub profile: String,
    pub policy_version: String,
    pub status: ClientStatus,
    /// When the client's registration ends; `None` only for records from
    /// before governance existed.
    pub expires_at: Option<UnixTime>,
    /// The approval or rejection record (JSON: by, reason, policy version, at, until).
    pub approval: Option<String>,
    /// When an approval lapses; the client is unusable from then on.
    pub approved_until: Option<UnixTime>,
    /// The last time the client obtained a token (flushed in batches, so up
    /// to a flush interval behind).
    pub last_used_at: Option<UnixTime>,
    /// The secret replaced by the last rotation, accepted until
    /// `previous_secret_expires_at` (the rotation overlap).
    pub previous_secret_hash: Option<TokenHash>,
    pub previous_secret_expires_at: Option<UnixTime>,
    /// For a client whose `client_id` is the URL of its metadata document
    /// (CIMD): the state of the copy the server holds.
    pub document: Option<DocumentState>,
}

/// The stored copy of a client ID metadata document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentState {
    /// Until when the copy may be used without fetching the document again
    /// (its `Cache-Control`, within the fetcher's bounds).
    pub fresh_until: UnixTime,
    /// SHA-256 of the validated metadata, to tell a changed document.
    pub digest: TokenHash,
}

impl ClientRecord {
    /// How the client was registered, for reports: `iat` (with an initial
    /// access token) or `anonymous`.
    pub fn registration_path(&self) -> &'static str {
        if self.initial_access_token_id.is_some() {
            "iat"
        } else {
            "anonymous"
        }
    }
}

/// A client as the token endpoint sees it: the record and the status of its
/// organization, read together.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInUse {
    pub client: ClientRecord,
    pub organization_status: String,
}

/// Which clients a report lists; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientQuery {
    pub organization_id: Option<String>,
    pub status: Option<ClientStatus>,
    /// Clients whose registration ends before this time.
    pub expires_before: Option<UnixTime>,
    /// Clients not used since this time (never-used clients issued before it included).
    pub unused_since: Option<UnixTime>,
    /// Only clients registered with an initial access token or anonymously
    /// (`ClientRecord::registration_path`).
    pub registration_path: Option<String>,
    pub limit: u32,
}

/// Clients counted by organization, registration path and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCount {
    pub organization_id: String,
    pub registration_path: String,
    pub status: ClientStatus,
    pub count: u64,
}

/// The outcome of storing a new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    /// The initial access token had no registrations left; nothing was stored.
    CredentialExhausted,
    /// The organization already had `quota` clients; nothing was stored.
    QuotaExceeded,
}

/// A full replacement of a client's metadata (RFC 7592 §2.2), applied only
/// while the registration access token is still `expected_registration_token_hash`.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    pub client_id: String,
    pub expected_registration_token_hash: TokenHash,
    pub metadata: serde_json::Value,
    pub secret_hash: Option<TokenHash>,
    pub secret_expires_at: Option<UnixTime>,
    pub registration_token_hash: TokenHash,
    pub updated_at: UnixTime,
    pub policy_version: String,
}

/// A server signing key; `private_pkcs8` is the DER private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub private_pkcs8: Vec<u8>,
    pub created_at: UnixTime,
    /// When the key starts signing; it is published from `created_at`.
    pub activates_at: UnixTime,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// What first start creates: the `default` organization, an admin token and
/// an initial access token for it.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub organization: Organization,
    pub admin_token_hash: TokenHash,
    pub initial_access_token: InitialAccessToken,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A uniqueness rule was violated (for example a duplicate organization name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// An organization quota would be exceeded (backends turn this into
    /// `Inserted::QuotaExceeded`).
    #[error("quota exceeded")]
    QuotaExceeded,
    /// A stored value could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The durability a backend gives a write before acknowledging it.
pub trait Describe {
    /// A one-line description for operators and benchmarks.
    fn durability(&self) -> String;
}

#[async_trait]
pub trait Store: Send + Sync + Describe + 'static {
    /// Creates the first-start records in one transaction if the `default`
    /// organization does not exist yet; returns whether it did so.
    async fn bootstrap(&self, records: Bootstrap, audit: AuditEvent) -> Result<bool>;

    async fn organization_by_name(&self, name: &str) -> Result<Option<Organization>>;
    async fn organization_by_id(&self, id: &str) -> Result<Option<Organization>>;
    async fn organizations(&self) -> Result<Vec<Organization>>;
    async fn initial_access_tokens(&self, organization_id: &str)
        -> Result<Vec<InitialAccessToken>>;
    /// Ids of active clients whose approval lapsed before `now`, at most `limit`.
    async fn lapsed_approvals(&self, now: UnixTime, limit: u32) -> Result<Vec<String>>;
    /// Ids of clients pending since before `cutoff`, at most `limit`.
    async fn pending_clients_before(&self, cutoff: UnixTime, limit: u32) -> Result<Vec<String>>;
    /// Applies `change` and appends `audit` in one transaction if the change
    /// applies (its precondition holds); returns whether it did.
    async fn apply_change(&self, change: Change, audit: AuditEvent) -> Result<bool>;
    async fn insert_organization(&self, org: Organization) -> Result<()>;

    /// Whether a hash belongs to an admin token.
    /// The id and role of the admin token with this hash.
    async fn admin_token(&self, hash: &TokenHash) -> Result<Option<(String, String)>>;

    async fn insert_initial_access_token(
        &self,
        token: InitialAccessToken,
        audit: AuditEvent,
    ) -> Result<()>;
    async fn initial_access_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<InitialAccessToken>>;

    /// Stores a new client and, in the same transaction, counts one use of
    /// its initial access token, refusing when the token's `max_uses` is
    /// reached (so concurrent registrations never over-use it). The write is
    /// durable when this returns.
    /// With `quota`, the client is stored only while its organization has
    /// fewer clients, checked in the same transaction. `audit` is appended in
    /// the same transaction; when nothing is stored it is not (the caller
    /// records the refusal itself).
    async fn insert_client(
        &self,
        client: ClientRecord,
        quota: Option<u64>,
        audit: AuditEvent,
    ) -> Result<Inserted>;
    /// Clients of an organization (for quotas).
    async fn organization_client_count(&self, organization_id: &str) -> Result<u64>;
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>>;
    /// How many clients exist (reports, and tests that prove a refused
    /// request stored nothing).
    async fn client_count(&self) -> Result<u64>;
    /// Replaces a client's metadata and credentials if its registration
    /// access token is still the expected one; returns whether it did.
    async fn update_client(&self, update: ClientUpdate, audit: AuditEvent) -> Result<bool>;
    /// Marks the stored copy of a client's metadata document fresh until
    /// `fresh_until` and moves the client's end to `expires_at`, if it is
    /// still the one with `digest` and active or pending. Whether it was.
    /// Cache bookkeeping, not a governed change: nothing is audited.
    async fn refresh_document(
        &self,
        client_id: &str,
        digest: &TokenHash,
        fresh_until: UnixTime,
        expires_at: UnixTime,
    ) -> Result<bool>;
    /// Replaces a metadata-document client whose stored document is still
    /// `expected_digest`, and whose status is active, pending or expired
    /// (never one an administrator revoked or rejected), by `client` (the
    /// same `client_id`): the old
    /// client's consents, codes, grants and refresh tokens end with it.
    /// One transaction with the audit entry; whether it was replaced
    /// (`false` when another request replaced or removed it first).
    async fn replace_client(
        &self,
        expected_digest: &TokenHash,
        client: ClientRecord,
        audit: AuditEvent,
    ) -> Result<bool>;
    /// Deletes a client if its registration access token is the expected
    /// one; returns whether it did.
    async fn delete_client(
        &self,
        client_id: &str,
        registration_token_hash: &TokenHash,
        audit: AuditEvent,
    ) -> Result<bool>;

    /// Appends an entry that records no other change (a refusal).
    async fn append_audit(&self, audit: AuditEvent) -> Result<()>;
    /// Entries with `seq > after`, in order, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>>;

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Stores each of `keys` as the initial key of its algorithm unless that
    /// algorithm has one already, in one transaction, and returns every
    /// stored key. Several replicas starting together end up with one key set.
    async fn ensure_signing_keys(
        &self,
        keys: Vec<SigningKeyRecord>,
    ) -> Result<Vec<SigningKeyRecord>>;

    /// Stores `key` as the next key of its algorithm unless a key of that
    /// algorithm activating after `now` exists already, in one transaction;
    /// returns whether it stored it. Replicas racing here add one key.
    async fn insert_next_signing_key(&self, key: SigningKeyRecord, now: UnixTime) -> Result<bool>;
    /// Removes a retired signing key.
    async fn delete_signing_key(&self, kid: &str) -> Result<()>;

    /// The client and its organization's status, in one read.
    async fn client_in_use(&self, client_id: &str) -> Result<Option<ClientInUse>>;
    /// The client as [`Store::client_in_use`] reads it, and whether the
    /// access token `jti` was revoked, in one read where the backend can
    /// (introspection by the token's own client needs both).
    async fn client_in_use_and_revoked(
        &self,
        client_id: &str,
        jti: &str,
    ) -> Result<(Option<ClientInUse>, bool)> {
        Ok((
            self.client_in_use(client_id).await?,
            self.access_token_revoked(jti).await?,
        ))
    }
    /// Records that each client was used at the given time (a batch from
    /// memory); a time never moves backwards.
    async fn touch_clients(&self, used: Vec<(String, UnixTime)>) -> Result<()>;
    /// Records a client assertion's `jti` until `expires_at`; returns false
    /// if the client already used it (a replay). Single-use across replicas.
    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti_hash: &TokenHash,
        expires_at: UnixTime,
    ) -> Result<bool>;
    /// Whether an access token (by `jti`) was revoked.
    async fn access_token_revoked(&self, jti: &str) -> Result<bool>;
    /// Forgets revoked tokens and used assertion ids that expired before
    /// `now`, and expired sessions, interactions, codes, refresh tokens,
    /// grants and the access-token ids recorded for grants.
    async fn purge_expired(&self, now: UnixTime) -> Result<u64>;

    /// Ids of active or pending clients whose registration ended at or before `now`.
    async fn clients_past_expiry(&self, now: UnixTime, limit: u32) -> Result<Vec<String>>;
    /// Ids of active clients registered before `cutoff` that have not been
    /// used since `cutoff` (or never).
    async fn clients_unused_since(&self, cutoff: UnixTime, limit: u32) -> Result<Vec<String>>;
    /// Ids of expired clients whose registration ended before `cutoff`.
    async fn expired_clients_before(&self, cutoff: UnixTime, limit: u32) -> Result<Vec<String>>;
    /// Clients matching `query`, soonest expiry first.
    async fn clients(&self, query: &ClientQuery) -> Result<Vec<ClientRecord>>;
    /// Client counts by organization, registration path and status.
    async fn client_counts(&self) -> Result<Vec<ClientCount>>;

    /// Stores a new end user; returns false (storing nothing) if the
    /// username is taken.
    async fn insert_user(&self, user: User, audit: AuditEvent) -> Result<bool>;
    async fn user(&self, id: &str) -> Result<Option<User>>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// Users ordered by username, at most `limit`.
    async fn users(&self, limit: u32) -> Result<Vec<User>>;

    async fn insert_session(&self, session: Session) -> Result<()>;
    async fn session(&self, id_hash: &TokenHash) -> Result<Option<Session>>;
    async fn delete_session(&self, id_hash: &TokenHash) -> Result<()>;

    async fn insert_interaction(&self, interaction: Interaction) -> Result<()>;
    async fn interaction(&self, id: &str) -> Result<Option<Interaction>>;
    /// Records who signed in for a pending interaction; false if it is gone.
    async fn set_interaction_user(
        &self,
        id: &str,
        user_id: &str,
        auth_time: UnixTime,
    ) -> Result<bool>;
    /// Ends the interaction `id` and stores `code` (and `consent`, merged
    /// into the user's earlier consent for the client with
    /// [`Consent::merged_into`]), in one transaction;
    /// returns false, storing nothing, if the interaction was already
    /// finished (a form submitted twice issues one code).
    async fn complete_interaction(
        &self,
        id: &str,
        code: AuthorizationCode,
        consent: Option<Consent>,
        audit: Option<AuditEvent>,
    ) -> Result<bool>;
    /// Ends the interaction `id` without a code (the user denied); false if
    /// it was already finished.
    async fn finish_interaction(&self, id: &str) -> Result<bool>;

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>>;
    /// A user's consents, by client id.
    async fn consents(&self, user_id: &str) -> Result<Vec<Consent>>;

    /// Marks the code used and returns it as it was before: `used` true
    /// means this is a replay. Atomic: of two concurrent calls exactly one
    /// sees `used == false`.
    async fn take_code(&self, code_hash: &TokenHash) -> Result<Option<AuthorizationCode>>;
    /// Records the tokens of one issuance in one transaction (see [`Issue`]).
    /// Returns false, storing nothing, if the new grant exists already (it
    /// was revoked by a replayed code), the existing grant is revoked or
    /// gone, or `rotated_from` was already used.
    async fn issue(&self, issue: Issue) -> Result<bool>;
    /// A refresh token and its grant.
    async fn refresh_token(&self, token_hash: &TokenHash) -> Result<Option<(RefreshToken, Grant)>>;

    /// Flushes and closes connections.
    async fn close(&self);
}
