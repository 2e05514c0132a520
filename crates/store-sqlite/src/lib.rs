//! The embedded default backend: SQLite in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one writer thread that owns the only write connection
//! and practices group commit: it takes every write waiting in its queue,
//! applies them in one transaction, syncs once, and only then answers each
//! caller. A registration is therefore acknowledged only after its row is on
//! disk, while concurrent registrations share the cost of one `fsync`.
//!
//! Reads run inline on the calling task with a connection from a small pool.
//! A primary-key lookup in SQLite takes a few microseconds, less than the
//! thread hand-off an async wrapper would add, and WAL readers never wait
//! for the writer. `rusqlite` is used rather than `sqlx` for exactly this
//! reason: sqlx's SQLite driver moves every statement to a worker thread,
//! and those wake-ups dominated the registration hot path under load.

mod migrations;
mod rows;
mod users;
mod writer;

use async_trait::async_trait;
use charter_store::*;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use writer::{WriteOp, Writer};

/// Idle read connections kept open; more are opened under load and closed after.
const MAX_IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Writer,
}

pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(code, message)
            if code.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let message = message.clone().unwrap_or_default();
            match code.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Error::Conflict(message),
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    Error::Database(format!("referenced record does not exist: {message}"))
                }
                _ => Error::Database(message),
            }
        }
        _ => Error::Database(e.to_string()),
    }
}

/// Opens a connection with the settings every connection needs.
pub(crate) fn connect(path: &PathBuf, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags).map_err(db_err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
    // FULL: every commit syncs the WAL, so an acknowledged write survives
    // power loss. Group commit keeps this affordable.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
        .map_err(db_err)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::Database(format!("invalid SQLite URL {url:?}; use sqlite:PATH"))
            })?;
        let path = PathBuf::from(path);
        let writer = Writer::start(path.clone()).await?;
        let first_reader = connect(&path, true)?;
        Ok(Self {
            path,
            readers: Mutex::new(vec![first_reader]),
            writer,
        })
    }

    /// Runs `f` with a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .map_err(|_| Error::Database("reader pool poisoned".into()))?
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, true)?,
        };
        let result = f(&conn).map_err(db_err);
        if let Ok(mut idle) = self.readers.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

/// Refuses an [`Issue`] whose parts name different grants: a caller's bug
/// that would otherwise store tokens under a grant that never revokes them.
fn check_issue(issue: &Issue) -> Result<()> {
    let grant = issue.grant.as_ref().map(|g| g.id.as_str());
    let token = issue.refresh_token.as_ref().map(|t| t.grant_id.as_str());
    if grant.is_some_and(|id| id != issue.grant_id) || token.is_some_and(|id| id != issue.grant_id)
    {
        return Err(Error::Database(format!(
            "issue for grant {:?} carries a grant or refresh token of another grant",
            issue.grant_id
        )));
    }
    Ok(())
}

impl Describe for SqliteStore {
    fn durability(&self) -> String {
        "SQLite WAL, synchronous=FULL (each acknowledged write is fsynced), group commit".into()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self, records: Bootstrap, audit: AuditEvent) -> Result<bool> {
        self.writer.submit(WriteOp::Bootstrap(records, audit)).await
    }

    async fn organization_by_name(&self, name: &str) -> Result<Option<Organization>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, name, created_at, status FROM organizations WHERE name = ?1",
            )?
            .query_row([name], rows::organization)
            .optional()
        })
    }

    async fn organization_by_id(&self, id: &str) -> Result<Option<Organization>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, name, created_at, status FROM organizations WHERE id = ?1",
            )?
            .query_row([id], rows::organization)
            .optional()
        })
    }

    async fn organizations(&self) -> Result<Vec<Organization>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, name, created_at, status FROM organizations ORDER BY name",
            )?
            .query_map([], rows::organization)?
            .collect()
        })
    }

    async fn initial_access_tokens(
        &self,
        organization_id: &str,
    ) -> Result<Vec<InitialAccessToken>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, organization_id, token_hash, created_at, expires_at, revoked, profile, max_uses, uses, allowed_cidr \
                 FROM initial_access_tokens WHERE organization_id = ?1 ORDER BY created_at, id",
            )?
            .query_map([organization_id], rows::initial_access_token)?
            .collect()
        })
    }

    async fn lapsed_approvals(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT client_id FROM clients WHERE status = 'active' AND approved_until < ?1 ORDER BY approved_until LIMIT ?2",
            )?
            .query_map(params![now, limit], |r| r.get(0))?
            .collect()
        })
    }

    async fn pending_clients_before(&self, cutoff: i64, limit: u32) -> Result<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT client_id FROM clients WHERE status = 'pending' AND issued_at < ?1 ORDER BY issued_at LIMIT ?2",
            )?
            .query_map(params![cutoff, limit], |r| r.get(0))?
            .collect()
        })
    }

    async fn apply_change(&self, change: Change, audit: AuditEvent) -> Result<bool> {
        self.writer.submit(WriteOp::Change(change, audit)).await
    }

    async fn insert_organization(&self, org: Organization) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertOrganization(org))
            .await
            .map(drop)
    }

    async fn admin_token(&self, hash: &TokenHash) -> Result<Option<(String, String)>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT coalesce(id, 'bootstrap'), role FROM admin_tokens WHERE token_hash = ?1",
            )?
            .query_row([&hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
    }

    async fn insert_initial_access_token(
        &self,
        token: InitialAccessToken,
        audit: AuditEvent,
    ) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertInitialAccessToken(token, audit))
            .await
            .map(drop)
    }

    async fn initial_access_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<InitialAccessToken>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, organization_id, token_hash, created_at, expires_at, revoked, profile, max_uses, uses, allowed_cidr \
                 FROM initial_access_tokens WHERE token_hash = ?1",
            )?
            .query_row([&hash[..]], rows::initial_access_token)
            .optional()
        })
    }

    async fn insert_client(
        &self,
        client: ClientRecord,
        quota: Option<u64>,
        audit: AuditEvent,
    ) -> Result<Inserted> {
        match self
            .writer
            .submit(WriteOp::InsertClient(Box::new(client), quota, audit))
            .await
        {
            Ok(true) => Ok(Inserted::Stored),
            Ok(false) => Ok(Inserted::CredentialExhausted),
            Err(Error::QuotaExceeded) => Ok(Inserted::QuotaExceeded),
            Err(e) => Err(e),
        }
    }

    async fn organization_client_count(&self, organization_id: &str) -> Result<u64> {
        self.read(|c| {
            c.prepare_cached("SELECT COUNT(*) FROM clients WHERE organization_id = ?1")?
                .query_row([organization_id], |r| r.get::<_, i64>(0))
        })
        .map(|n| n.max(0) as u64)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM clients WHERE client_id = ?1",
                rows::CLIENT_COLUMNS
            ))?
            .query_row([client_id], rows::client)
            .optional()
        })
    }

    async fn client_count(&self) -> Result<u64> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM clients", [], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
    }

    async fn update_client(&self, update: ClientUpdate, audit: AuditEvent) -> Result<bool> {
        self.writer
            .submit(WriteOp::UpdateClient(Box::new(update), audit))
            .await
    }

    async fn refresh_document(
        &self,
        client_id: &str,
        digest: &TokenHash,
        fresh_until: i64,
        expires_at: i64,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::RefreshDocument(
                client_id.to_owned(),
                *digest,
                fresh_until,
                expires_at,
            ))
            .await
    }

    async fn replace_client(
        &self,
        expected_digest: &TokenHash,
        client: ClientRecord,
        audit: AuditEvent,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::ReplaceClient(
                *expected_digest,
                Box::new(client),
                audit,
            ))
            .await
    }

    async fn append_audit(&self, audit: AuditEvent) -> Result<()> {
        self.writer
            .submit(WriteOp::AppendAudit(audit))
            .await
            .map(drop)
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        self.read(|c| {
            c.prepare_cached("SELECT seq, at, event, prev_hash, hash FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2")?
                .query_map(params![after, limit], rows::audit)?
                .collect()
        })
    }

    async fn delete_client(
        &self,
        client_id: &str,
        registration_token_hash: &TokenHash,
        audit: AuditEvent,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::DeleteClient(
                client_id.to_owned(),
                *registration_token_hash,
                audit,
            ))
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.read(|c| {
            c.prepare_cached("SELECT kid, alg, private_pkcs8, created_at, activates_at FROM signing_keys ORDER BY activates_at, kid")?
                .query_map([], |r| {
                    Ok(SigningKeyRecord { kid: r.get(0)?, alg: r.get(1)?, private_pkcs8: r.get(2)?, created_at: r.get(3)?, activates_at: r.get(4)? })
                })?
                .collect()
        })
    }

    async fn ensure_signing_keys(
        &self,
        keys: Vec<SigningKeyRecord>,
    ) -> Result<Vec<SigningKeyRecord>> {
        self.writer.submit(WriteOp::EnsureSigningKeys(keys)).await?;
        self.signing_keys().await
    }

    async fn insert_next_signing_key(&self, key: SigningKeyRecord, now: i64) -> Result<bool> {
        self.writer
            .submit(WriteOp::InsertNextSigningKey(key, now))
            .await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<()> {
        self.writer
            .submit(WriteOp::DeleteSigningKey(kid.to_owned()))
            .await
            .map(drop)
    }

    async fn client_in_use(&self, client_id: &str) -> Result<Option<ClientInUse>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {}, o.status FROM clients JOIN organizations o ON o.id = clients.organization_id \
                 WHERE client_id = ?1",
                rows::CLIENT_COLUMNS.replace("status,", "clients.status,")
            ))?
            .query_row([client_id], |r| {
                Ok(ClientInUse {
                    client: rows::client(r)?,
                    organization_status: r.get(rows::CLIENT_COLUMN_COUNT)?,
                })
            })
            .optional()
        })
    }

    async fn client_in_use_and_revoked(
        &self,
        client_id: &str,
        jti: &str,
    ) -> Result<(Option<ClientInUse>, bool)> {
        let found = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {}, o.status, EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = ?2) \
                 FROM clients JOIN organizations o ON o.id = clients.organization_id WHERE client_id = ?1",
                rows::CLIENT_COLUMNS.replace("status,", "clients.status,")
            ))?
            .query_row(params![client_id, jti], |r| {
                Ok((
                    ClientInUse {
                        client: rows::client(r)?,
                        organization_status: r.get(rows::CLIENT_COLUMN_COUNT)?,
                    },
                    r.get::<_, bool>(rows::CLIENT_COLUMN_COUNT + 1)?,
                ))
            })
            .optional()
        })?;
        match found {
            Some((client, revoked)) => Ok((Some(client), revoked)),
            None => Ok((None, self.access_token_revoked(jti).await?)),
        }
    }

    async fn touch_clients(&self, used: Vec<(String, i64)>) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        self.writer
            .submit(WriteOp::TouchClients(used))
            .await
            .map(drop)
    }

    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti_hash: &TokenHash,
        expires_at: i64,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::UseAssertionJti(
                client_id.to_owned(),
                *jti_hash,
                expires_at,
            ))
            .await
    }

    async fn access_token_revoked(&self, jti: &str) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM revoked_access_tokens WHERE jti = ?1")?
                .query_row([jti], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
        })
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        self.writer.submit_count(WriteOp::PurgeExpired(now)).await
    }

    async fn clients_past_expiry(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT client_id FROM clients WHERE status IN ('active', 'pending') AND expires_at <= ?1 \
                 ORDER BY expires_at LIMIT ?2",
            )?
            .query_map(params![now, limit], |r| r.get(0))?
            .collect()
        })
    }

    async fn clients_unused_since(&self, cutoff: i64, limit: u32) -> Result<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT client_id FROM clients WHERE status = 'active' AND issued_at < ?1 \
                 AND (last_used_at IS NULL OR last_used_at < ?1) ORDER BY issued_at LIMIT ?2",
            )?
            .query_map(params![cutoff, limit], |r| r.get(0))?
            .collect()
        })
    }

    async fn expired_clients_before(&self, cutoff: i64, limit: u32) -> Result<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT client_id FROM clients WHERE status = 'expired' AND expires_at < ?1 \
                 ORDER BY expires_at LIMIT ?2",
            )?
            .query_map(params![cutoff, limit], |r| r.get(0))?
            .collect()
        })
    }

    async fn clients(&self, query: &ClientQuery) -> Result<Vec<ClientRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM clients WHERE (?1 IS NULL OR organization_id = ?1) AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR expires_at < ?3) \
                 AND (?4 IS NULL OR (issued_at < ?4 AND (last_used_at IS NULL OR last_used_at < ?4))) \
                 AND (?5 IS NULL OR (CASE WHEN initial_access_token_id IS NULL THEN 'anonymous' ELSE 'iat' END) = ?5) \
                 ORDER BY expires_at, client_id LIMIT ?6",
                rows::CLIENT_COLUMNS
            ))?
            .query_map(
                params![
                    query.organization_id,
                    query.status.map(ClientStatus::as_str),
                    query.expires_before,
                    query.unused_since,
                    query.registration_path,
                    query.limit
                ],
                rows::client,
            )?
            .collect()
        })
    }

    async fn client_counts(&self) -> Result<Vec<ClientCount>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT organization_id, CASE WHEN initial_access_token_id IS NULL THEN 'anonymous' ELSE 'iat' END AS path, \
                 status, COUNT(*) FROM clients GROUP BY organization_id, path, status ORDER BY organization_id, path, status",
            )?
            .query_map([], |r| {
                Ok(ClientCount {
                    organization_id: r.get(0)?,
                    registration_path: r.get(1)?,
                    status: rows::status(r, 2)?,
                    count: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?
            .collect()
        })
    }

    async fn insert_user(&self, user: User, audit: AuditEvent) -> Result<bool> {
        self.writer
            .submit(WriteOp::InsertUser(Box::new(user), audit))
            .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM users WHERE id = ?1",
                users::USER_COLUMNS
            ))?
            .query_row([id], users::user)
            .optional()
        })
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM users WHERE username = ?1",
                users::USER_COLUMNS
            ))?
            .query_row([username], users::user)
            .optional()
        })
    }

    async fn users(&self, limit: u32) -> Result<Vec<User>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM users ORDER BY username LIMIT ?1",
                users::USER_COLUMNS
            ))?
            .query_map([limit], users::user)?
            .collect()
        })
    }

    async fn insert_session(&self, session: Session) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertSession(session))
            .await
            .map(drop)
    }

    async fn session(&self, id_hash: &TokenHash) -> Result<Option<Session>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id_hash, user_id, auth_time, expires_at FROM sessions WHERE id_hash = ?1",
            )?
            .query_row([&id_hash[..]], users::session)
            .optional()
        })
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> Result<()> {
        self.writer
            .submit(WriteOp::DeleteSession(*id_hash))
            .await
            .map(drop)
    }

    async fn insert_interaction(&self, interaction: Interaction) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertInteraction(Box::new(interaction)))
            .await
            .map(drop)
    }

    async fn interaction(&self, id: &str) -> Result<Option<Interaction>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM interactions WHERE id = ?1",
                users::INTERACTION_COLUMNS
            ))?
            .query_row([id], users::interaction)
            .optional()
        })
    }

    async fn set_interaction_user(&self, id: &str, user_id: &str, auth_time: i64) -> Result<bool> {
        self.writer
            .submit(WriteOp::SetInteractionUser(
                id.to_owned(),
                user_id.to_owned(),
                auth_time,
            ))
            .await
    }

    async fn complete_interaction(
        &self,
        id: &str,
        code: AuthorizationCode,
        consent: Option<Consent>,
        audit: Option<AuditEvent>,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::CompleteInteraction(Box::new(
                writer::CompleteInteraction {
                    id: id.to_owned(),
                    code,
                    consent,
                    audit,
                },
            )))
            .await
    }

    async fn finish_interaction(&self, id: &str) -> Result<bool> {
        self.writer
            .submit(WriteOp::FinishInteraction(id.to_owned()))
            .await
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM consents WHERE user_id = ?1 AND client_id = ?2",
                users::CONSENT_COLUMNS
            ))?
            .query_row([user_id, client_id], users::consent)
            .optional()
        })
    }

    async fn consents(&self, user_id: &str) -> Result<Vec<Consent>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM consents WHERE user_id = ?1 ORDER BY client_id",
                users::CONSENT_COLUMNS
            ))?
            .query_map([user_id], users::consent)?
            .collect()
        })
    }

    async fn take_code(&self, code_hash: &TokenHash) -> Result<Option<AuthorizationCode>> {
        let found = self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM authorization_codes WHERE code_hash = ?1",
                users::CODE_COLUMNS
            ))?
            .query_row([&code_hash[..]], users::code)
            .optional()
        })?;
        let Some(mut code) = found else {
            return Ok(None);
        };
        if !code.used {
            // The writer marks it used only if it still is unused, so of
            // concurrent callers exactly one is told the code was fresh.
            code.used = !self.writer.submit(WriteOp::TakeCode(*code_hash)).await?;
        }
        Ok(Some(code))
    }

    async fn issue(&self, issue: Issue) -> Result<bool> {
        check_issue(&issue)?;
        self.writer.submit(WriteOp::Issue(Box::new(issue))).await
    }

    async fn refresh_token(&self, token_hash: &TokenHash) -> Result<Option<(RefreshToken, Grant)>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {} FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.token_hash = ?1",
                users::REFRESH_TOKEN_COLUMNS
            ))?
            .query_row([&token_hash[..]], users::refresh_token)
            .optional()
        })
    }

    async fn close(&self) {
        self.writer.close().await;
        if let Ok(mut idle) = self.readers.lock() {
            idle.clear();
        }
    }
}
