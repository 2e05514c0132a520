//! The group-commit writer: one thread, one connection, one transaction per
//! batch of queued writes.
//!
//! A write that fails (say, a duplicate key) is rolled back alone and
//! reported to its caller while the rest of the batch commits: one-statement
//! writes get this from SQLite's statement atomicity (the default ABORT
//! conflict resolution undoes the statement and keeps the transaction),
//! multi-statement writes from a savepoint of their own. Callers are
//! answered only after `COMMIT` returns, i.e. after SQLite synced the WAL.

use charter_store::audit::{self, AuditEvent};
use charter_store::{
    AuthorizationCode, Bootstrap, Change, ClientRecord, ClientUpdate, Consent, Error,
    InitialAccessToken, Interaction, Issue, Organization, Result, Session, SigningKeyRecord,
    TokenHash, User,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};

use crate::{db_err, users};

/// Most writes applied in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

pub(crate) enum WriteOp {
    Bootstrap(Bootstrap, AuditEvent),
    InsertOrganization(Organization),
    InsertInitialAccessToken(InitialAccessToken, AuditEvent),
    InsertClient(Box<ClientRecord>, Option<u64>, AuditEvent),
    UpdateClient(Box<ClientUpdate>, AuditEvent),
    RefreshDocument(String, TokenHash, i64, i64),
    ReplaceClient(TokenHash, Box<ClientRecord>, AuditEvent),
    DeleteClient(String, TokenHash, AuditEvent),
    AppendAudit(AuditEvent),
    Change(Change, AuditEvent),
    EnsureSigningKeys(Vec<SigningKeyRecord>),
    InsertNextSigningKey(SigningKeyRecord, i64),
    DeleteSigningKey(String),
    TouchClients(Vec<(String, i64)>),
    UseAssertionJti(String, TokenHash, i64),
    PurgeExpired(i64),
    InsertUser(Box<User>, AuditEvent),
    InsertSession(Session),
    DeleteSession(TokenHash),
    InsertInteraction(Box<Interaction>),
    SetInteractionUser(String, String, i64),
    CompleteInteraction(Box<CompleteInteraction>),
    FinishInteraction(String),
    TakeCode(TokenHash),
    Issue(Box<Issue>),
}

/// The arguments of `Store::complete_interaction`.
pub(crate) struct CompleteInteraction {
    pub(crate) id: String,
    pub(crate) code: AuthorizationCode,
    pub(crate) consent: Option<Consent>,
    pub(crate) audit: Option<AuditEvent>,
}

impl WriteOp {
    /// The audit entry appended when the operation changes something.
    fn audit(&self) -> Option<&AuditEvent> {
        match self {
            WriteOp::Bootstrap(_, a)
            | WriteOp::InsertInitialAccessToken(_, a)
            | WriteOp::InsertClient(_, _, a)
            | WriteOp::UpdateClient(_, a)
            | WriteOp::ReplaceClient(_, _, a)
            | WriteOp::DeleteClient(_, _, a)
            | WriteOp::AppendAudit(a)
            | WriteOp::InsertUser(_, a)
            | WriteOp::Change(_, a) => Some(a),
            WriteOp::CompleteInteraction(c) => c.audit.as_ref(),
            WriteOp::InsertOrganization(_)
            | WriteOp::EnsureSigningKeys(_)
            | WriteOp::InsertNextSigningKey(..)
            | WriteOp::DeleteSigningKey(_)
            | WriteOp::TouchClients(_)
            | WriteOp::RefreshDocument(..)
            | WriteOp::UseAssertionJti(..)
            | WriteOp::PurgeExpired(_)
            | WriteOp::InsertSession(_)
            | WriteOp::DeleteSession(_)
            | WriteOp::InsertInteraction(_)
            | WriteOp::SetInteractionUser(..)
            | WriteOp::FinishInteraction(_)
            | WriteOp::TakeCode(_)
            | WriteOp::Issue(_) => None,
        }
    }
}

/// The last entry of the audit chain: its sequence number and hash.
type ChainHead = (i64, TokenHash);

fn load_head(conn: &Connection) -> rusqlite::Result<ChainHead> {
    conn.query_row(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        [],
        |r| {
            let hash: Vec<u8> = r.get(1)?;
            let hash: TokenHash = hash.try_into().map_err(|bytes: Vec<u8>| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Blob,
                    format!("audit hash of {} bytes", bytes.len()).into(),
                )
            })?;
            Ok((r.get(0)?, hash))
        },
    )
    .optional()
    .map(|head| head.unwrap_or((0, audit::GENESIS)))
}

/// An operation and where to send its outcome: whether it changed
/// anything, or for counting operations how many rows it changed.
type Job = (WriteOp, oneshot::Sender<Result<u64>>);

pub(crate) struct Writer {
    /// `None` once closed. Callers clone the sender, so the thread keeps
    /// running until every in-flight write has been answered.
    queue: std::sync::RwLock<Option<mpsc::Sender<Job>>>,
    finished: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    /// Opens the write connection, applies migrations and starts the writer
    /// thread, so that a slow `fsync` never blocks a request worker.
    pub(crate) async fn start(path: PathBuf) -> Result<Self> {
        let (queue, rx) = mpsc::channel(8192);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (finished_tx, finished_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("charter-sqlite-writer".into())
            .spawn(move || {
                let conn = crate::connect(&path, false).and_then(|mut conn| {
                    crate::migrations::apply(&mut conn)?;
                    // Checkpoints run on their own thread (below), never
                    // inside a commit: an automatic checkpoint would stall
                    // the whole batch behind a database-file fsync.
                    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
                        .map_err(db_err)?;
                    Ok(conn)
                });
                match conn {
                    Ok(conn) => {
                        let checkpointer = Checkpointer::start(path.clone());
                        let _ = ready_tx.send(Ok(()));
                        run(&conn, rx);
                        drop(checkpointer);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                let _ = finished_tx.send(());
            })
            .map_err(|e| Error::Database(format!("cannot start the SQLite writer thread: {e}")))?;
        ready_rx
            .await
            .map_err(|_| Error::Database("the SQLite writer failed to start".into()))??;
        Ok(Self {
            queue: std::sync::RwLock::new(Some(queue)),
            finished: tokio::sync::Mutex::new(Some(finished_rx)),
        })
    }

    pub(crate) async fn submit(&self, op: WriteOp) -> Result<bool> {
        self.submit_count(op).await.map(|n| n > 0)
    }

    /// Like [`Self::submit`], answering how many rows the operation changed.
    pub(crate) async fn submit_count(&self, op: WriteOp) -> Result<u64> {
        let stopped = || Error::Database("the SQLite writer has stopped".into());
        let queue = self
            .queue
            .read()
            .map_err(|_| stopped())?
            .clone()
            .ok_or_else(stopped)?;
        let (tx, rx) = oneshot::channel();
        queue.send((op, tx)).await.map_err(|_| stopped())?;
        rx.await
            .map_err(|_| Error::Database("the SQLite writer stopped before answering".into()))?
    }

    /// Stops accepting writes, finishes the queued ones and closes the connection.
    pub(crate) async fn close(&self) {
        if let Ok(mut queue) = self.queue.write() {
            queue.take();
        }
        if let Some(finished) = self.finished.lock().await.take() {
            let _ = finished.await;
        }
    }
}

/// Copies committed WAL frames into the database file in the background
/// (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks the writer), so the
/// WAL stays small without checkpoints on the commit path.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
    /// The WAL size past which the checkpointer resets the WAL.
    const WAL_LIMIT: u64 = 256 * 1024 * 1024;

    fn start(path: PathBuf) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("charter-sqlite-checkpoint".into())
            .spawn(move || {
                let conn = match crate::connect(&path, false) {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::error!(error = %e, "WAL checkpointer cannot open the database");
                        return;
                    }
                };
                let wal = {
                    let mut name = path.clone().into_os_string();
                    name.push("-wal");
                    PathBuf::from(name)
                };
                let checkpoint = || {
                    // Under sustained writes a passive checkpoint never
                    // reaches the end of the WAL, so the WAL never restarts
                    // and grows without bound. Past WAL_LIMIT, a TRUNCATE
                    // checkpoint briefly holds the writer back and resets it.
                    let large = std::fs::metadata(&wal).is_ok_and(|m| m.len() > Self::WAL_LIMIT);
                    let mode = if large { "TRUNCATE" } else { "PASSIVE" };
                    if let Err(e) =
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, mode, "WAL checkpoint failed");
                    }
                };
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Self::INTERVAL)
                {
                    checkpoint();
                }
                checkpoint();
            })
            .ok();
        Self {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, mut rx: mpsc::Receiver<Job>) {
    let mut head = match load_head(conn) {
        Ok(head) => head,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the audit chain head; the writer stops");
            return;
        }
    };
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = apply_batch(conn, &batch, &mut head);
        for ((_, reply), result) in batch.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }
}

fn apply_batch(conn: &Connection, batch: &[Job], head: &mut ChainHead) -> Vec<Result<u64>> {
    let start = *head;
    let fail_all = |e: rusqlite::Error| {
        let message = e.to_string();
        batch
            .iter()
            .map(|_| Err(Error::Database(message.clone())))
            .collect()
    };
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return fail_all(e);
    }
    let results: Vec<Result<u64>> = batch
        .iter()
        .map(|(op, _)| apply_one(conn, op, head))
        .collect();
    match conn.execute_batch("COMMIT") {
        Ok(()) => results,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; rolling back the batch");
            let _ = conn.execute_batch("ROLLBACK");
            *head = start;
            fail_all(e)
        }
    }
}

fn apply_one(conn: &Connection, op: &WriteOp, head: &mut ChainHead) -> Result<u64> {
    let multi_statement = op.audit().is_some()
        || matches!(
            op,
            WriteOp::EnsureSigningKeys(_)
                | WriteOp::InsertNextSigningKey(..)
                | WriteOp::TouchClients(_)
                | WriteOp::PurgeExpired(_)
                | WriteOp::CompleteInteraction(_)
                | WriteOp::Issue(_)
        );
    if !multi_statement {
        return apply_statements(conn, op).map_err(db_err);
    }
    conn.execute_batch("SAVEPOINT op").map_err(db_err)?;
    let mut next_head = *head;
    let result = within_quota(conn, op)
        .and_then(|()| apply_statements(conn, op).map_err(db_err))
        .and_then(|changed| {
            // Only a change is audited; an update or delete that matched
            // nothing, or an exhausted token, leaves no entry here.
            if let (true, Some(event)) = (changed > 0, op.audit()) {
                next_head = append(conn, *head, event).map_err(db_err)?;
            }
            Ok(changed)
        });
    // An operation that changed nothing is refused as a whole: whatever it
    // wrote before it found its precondition unmet is undone too (`issue`
    // stores the new grant before it finds the rotated token already used).
    let keep = matches!(result, Ok(changed) if changed > 0);
    let finish = if keep {
        "RELEASE op"
    } else {
        "ROLLBACK TO op; RELEASE op"
    };
    conn.execute_batch(finish).map_err(db_err)?;
    if keep {
        *head = next_head;
    }
    result
}

/// The organization quota of an insert, checked inside the writer's
/// transaction so no concurrent registration can slip past it.
fn within_quota(conn: &Connection, op: &WriteOp) -> Result<()> {
    let WriteOp::InsertClient(client, Some(quota), _) = op else {
        return Ok(());
    };
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM clients WHERE organization_id = ?1")
        .and_then(|mut s| s.query_row([&client.organization_id], |r| r.get(0)))
        .map_err(db_err)?;
    if count.max(0) as u64 >= *quota {
        return Err(Error::QuotaExceeded);
    }
    Ok(())
}

fn append(conn: &Connection, head: ChainHead, event: &AuditEvent) -> rusqlite::Result<ChainHead> {
    let record = audit::next_record(head.0, head.1, event);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, event, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        record.seq,
        record.at,
        record.event_json,
        &record.prev_hash[..],
        &record.hash[..]
    ])?;
    Ok((record.seq, record.hash))
}

fn apply_statements(conn: &Connection, op: &WriteOp) -> rusqlite::Result<u64> {
    let count = |changed: bool| u64::from(changed);
    Ok(match op {
        WriteOp::Bootstrap(b, _) => {
            let created = conn
                .prepare_cached("INSERT INTO organizations (id, name, created_at, status) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING")?
                .execute(params![b.organization.id, b.organization.name, b.organization.created_at, b.organization.status])?
                == 1;
            if created {
                conn.prepare_cached(
                    "INSERT INTO admin_tokens (token_hash, created_at) VALUES (?1, ?2)",
                )?
                .execute(params![&b.admin_token_hash[..], b.organization.created_at])?;
                insert_iat(conn, &b.initial_access_token)?;
            }
            count(created)
        }
        WriteOp::InsertOrganization(o) => {
            conn.prepare_cached(
                "INSERT INTO organizations (id, name, created_at, status) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![o.id, o.name, o.created_at, o.status])?;
            1
        }
        WriteOp::InsertInitialAccessToken(t, _) => insert_iat(conn, t).map(|_| 1)?,
        WriteOp::AppendAudit(_) => 1,
        WriteOp::Change(change, _) => count(apply_change(conn, change)?),
        WriteOp::InsertClient(c, _, _) => {
            // Count the use first: if the token is exhausted nothing is stored.
            if let Some(iat) = &c.initial_access_token_id {
                let counted = conn
                    .prepare_cached(
                        "UPDATE initial_access_tokens SET uses = uses + 1 \
                         WHERE id = ?1 AND (max_uses IS NULL OR uses < max_uses)",
                    )?
                    .execute([iat])?;
                if counted == 0 {
                    return Ok(0);
                }
            }
            insert_client(conn, c)?;
            1
        }
        WriteOp::RefreshDocument(client_id, digest, fresh_until, expires_at) => conn
            .prepare_cached(
                "UPDATE clients SET document_fresh_until = ?3, expires_at = ?4 \
                 WHERE client_id = ?1 AND document_digest = ?2 AND status IN ('active', 'pending')",
            )?
            .execute(params![client_id, &digest[..], fresh_until, expires_at])?
            as u64,
        WriteOp::ReplaceClient(expected, c, _) => {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM clients WHERE client_id = ?1 AND document_digest = ?2 \
                     AND status IN ('active', 'pending', 'expired')",
                )?
                .execute(params![c.client_id, &expected[..]])?;
            if deleted == 0 {
                return Ok(0);
            }
            users::delete_client_data(conn, &c.client_id)?;
            insert_client(conn, c)?;
            1
        }
        WriteOp::UpdateClient(u, _) => {
            let updated = conn
                .prepare_cached(
                    "UPDATE clients SET metadata = ?1, secret_hash = ?2, secret_expires_at = ?3, \
                     registration_token_hash = ?4, updated_at = ?5, policy_version = ?8 \
                     WHERE client_id = ?6 AND registration_token_hash = ?7",
                )?
                .execute(params![
                    u.metadata.to_string(),
                    u.secret_hash.as_ref().map(|h| &h[..]),
                    u.secret_expires_at,
                    &u.registration_token_hash[..],
                    u.updated_at,
                    u.client_id,
                    &u.expected_registration_token_hash[..],
                    u.policy_version,
                ])?;
            count(updated == 1)
        }
        WriteOp::DeleteClient(client_id, rat, _) => {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM clients WHERE client_id = ?1 AND registration_token_hash = ?2",
                )?
                .execute(params![client_id, &rat[..]])?;
            if deleted == 1 {
                users::delete_client_data(conn, client_id)?;
            }
            count(deleted == 1)
        }
        WriteOp::EnsureSigningKeys(keys) => {
            for k in keys {
                conn.prepare_cached(
                    "INSERT INTO signing_keys (kid, alg, initial_for_alg, private_pkcs8, created_at, activates_at) \
                     VALUES (?1, ?2, ?2, ?3, ?4, ?5) ON CONFLICT (initial_for_alg) DO NOTHING",
                )?
                .execute(params![k.kid, k.alg, k.private_pkcs8, k.created_at, k.activates_at])?;
            }
            1
        }
        WriteOp::InsertNextSigningKey(k, now) => {
            let pending: Option<i64> = conn
                .prepare_cached(
                    "SELECT 1 FROM signing_keys WHERE alg = ?1 AND activates_at > ?2 LIMIT 1",
                )?
                .query_row(params![k.alg, now], |r| r.get(0))
                .optional()?;
            if pending.is_some() {
                0
            } else {
                conn.prepare_cached(
                    "INSERT INTO signing_keys (kid, alg, private_pkcs8, created_at, activates_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![k.kid, k.alg, k.private_pkcs8, k.created_at, k.activates_at])?
                    as u64
            }
        }
        WriteOp::DeleteSigningKey(kid) => conn
            .prepare_cached("DELETE FROM signing_keys WHERE kid = ?1")?
            .execute([kid])? as u64,
        WriteOp::TouchClients(used) => {
            let mut changed = 0;
            for (client_id, at) in used {
                changed += conn
                    .prepare_cached(
                        "UPDATE clients SET last_used_at = ?2 WHERE client_id = ?1 \
                         AND (last_used_at IS NULL OR last_used_at < ?2)",
                    )?
                    .execute(params![client_id, at])? as u64;
            }
            changed
        }
        WriteOp::UseAssertionJti(client_id, jti_hash, expires_at) => conn
            .prepare_cached(
                "INSERT INTO used_assertion_ids (client_id, jti_hash, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![client_id, &jti_hash[..], expires_at])? as u64,
        WriteOp::PurgeExpired(now) => {
            let tokens = conn
                .prepare_cached("DELETE FROM revoked_access_tokens WHERE expires_at < ?1")?
                .execute([now])?;
            let ids = conn
                .prepare_cached("DELETE FROM used_assertion_ids WHERE expires_at < ?1")?
                .execute([now])?;
            (tokens + ids) as u64 + users::purge_expired(conn, *now)?
        }
        WriteOp::InsertUser(u, _) => users::insert_user(conn, u)?,
        WriteOp::InsertSession(s) => users::insert_session(conn, s)?,
        WriteOp::DeleteSession(id_hash) => users::delete_session(conn, id_hash)?,
        WriteOp::InsertInteraction(i) => users::insert_interaction(conn, i)?,
        WriteOp::SetInteractionUser(id, user_id, auth_time) => {
            users::set_interaction_user(conn, id, user_id, *auth_time)?
        }
        WriteOp::CompleteInteraction(c) => {
            users::complete_interaction(conn, &c.id, &c.code, c.consent.as_ref())?
        }
        WriteOp::FinishInteraction(id) => users::finish_interaction(conn, id)?,
        WriteOp::TakeCode(code_hash) => users::take_code(conn, code_hash)?,
        WriteOp::Issue(issue) => users::issue(conn, issue)?,
    })
}

fn apply_change(conn: &Connection, change: &Change) -> rusqlite::Result<bool> {
    let changed = match change {
        Change::ApproveClient { client_id, approval, until } => conn
            .prepare_cached(
                "UPDATE clients SET status = 'active', approval = ?2, approved_until = ?3 \
                 WHERE client_id = ?1 AND status = 'pending'",
            )?
            .execute(params![client_id, approval, until])?,
        Change::LapseApproval { client_id, now } => conn
            .prepare_cached(
                "UPDATE clients SET status = 'pending' WHERE client_id = ?1 AND status = 'active' AND approved_until < ?2",
            )?
            .execute(params![client_id, now])?,
        Change::RejectClient { client_id, approval } => conn
            .prepare_cached("UPDATE clients SET status = 'rejected', approval = ?2 WHERE client_id = ?1 AND status = 'pending'")?
            .execute(params![client_id, approval])?,
        Change::SetOrganizationStatus { organization_id, from, to } => conn
            .prepare_cached("UPDATE organizations SET status = ?3 WHERE id = ?1 AND status = ?2")?
            .execute(params![organization_id, from, to])?,
        Change::OffboardOrganization { organization_id } => {
            let changed = conn
                .prepare_cached("UPDATE organizations SET status = 'offboarded' WHERE id = ?1 AND status <> 'offboarded'")?
                .execute([organization_id])?;
            if changed == 1 {
                conn.prepare_cached("UPDATE clients SET status = 'revoked' WHERE organization_id = ?1")?
                    .execute([organization_id])?;
                conn.prepare_cached("UPDATE initial_access_tokens SET revoked = 1 WHERE organization_id = ?1")?
                    .execute([organization_id])?;
            }
            changed
        }
        Change::InsertAdminToken { id, token_hash, role, created_at } => conn
            .prepare_cached("INSERT INTO admin_tokens (token_hash, created_at, id, role) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![&token_hash[..], created_at, id, role])?,
        Change::ExpireClient { client_id, now } => conn
            .prepare_cached(
                "UPDATE clients SET status = 'expired', expires_at = MIN(coalesce(expires_at, ?2), ?2) \
                 WHERE client_id = ?1 AND status IN ('active', 'pending')",
            )?
            .execute(params![client_id, now])?,
        Change::RevokeClient { client_id } => conn
            .prepare_cached("UPDATE clients SET status = 'revoked' WHERE client_id = ?1 AND status IN ('active', 'pending')")?
            .execute([client_id])?,
        Change::DeleteClient { client_id } => {
            let deleted = conn
                .prepare_cached("DELETE FROM clients WHERE client_id = ?1")?
                .execute([client_id])?;
            if deleted == 1 {
                users::delete_client_data(conn, client_id)?;
            }
            deleted
        }
        Change::RemoveDocumentClient { client_id, expected_digest } => {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM clients WHERE client_id = ?1 AND document_digest = ?2 \
                     AND status IN ('active', 'pending', 'expired')",
                )?
                .execute(params![client_id, &expected_digest[..]])?;
            if deleted == 1 {
                users::delete_client_data(conn, client_id)?;
            }
            deleted
        }
        Change::RotateSecret { client_id, expected_secret_hash, secret_hash, secret_expires_at, previous_expires_at } => conn
            .prepare_cached(
                "UPDATE clients SET previous_secret_hash = secret_hash, previous_secret_expires_at = ?5, \
                 secret_hash = ?3, secret_expires_at = ?4 WHERE client_id = ?1 AND secret_hash = ?2",
            )?
            .execute(params![client_id, &expected_secret_hash[..], &secret_hash[..], secret_expires_at, previous_expires_at])?,
        Change::RevokeAccessToken { jti, client_id, expires_at } => conn
            .prepare_cached(
                "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![jti, client_id, expires_at])?,
        Change::RevokeInitialAccessToken { id } => conn
            .prepare_cached("UPDATE initial_access_tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0")?
            .execute([id])?,
        Change::SetUserDisabled { user_id, disabled } => {
            usize::from(users::set_user_disabled(conn, user_id, *disabled)?)
        }
        Change::RevokeConsent { user_id, client_id } => {
            usize::from(users::revoke_consent(conn, user_id, client_id)?)
        }
        Change::RevokeGrant { grant_id, client_id, user_id, now } => {
            usize::from(users::revoke_grant(conn, grant_id, client_id, user_id, *now)?)
        }
    };
    Ok(changed == 1)
}

fn insert_client(conn: &Connection, c: &ClientRecord) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO clients (client_id, organization_id, initial_access_token_id, metadata, secret_hash, \
         secret_expires_at, registration_token_hash, issued_at, updated_at, profile, policy_version, status, \
         expires_at, approval, approved_until, last_used_at, previous_secret_hash, previous_secret_expires_at, \
         document_fresh_until, document_digest) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        c.client_id,
        c.organization_id,
        c.initial_access_token_id,
        c.metadata.to_string(),
        c.secret_hash.as_ref().map(|h| &h[..]),
        c.secret_expires_at,
        &c.registration_token_hash[..],
        c.issued_at,
        c.updated_at,
        c.profile,
        c.policy_version,
        c.status.as_str(),
        c.expires_at,
        c.approval,
        c.approved_until,
        c.last_used_at,
        c.previous_secret_hash.as_ref().map(|h| &h[..]),
        c.previous_secret_expires_at,
        c.document.map(|d| d.fresh_until),
        c.document.as_ref().map(|d| &d.digest[..]),
    ])
}

fn insert_iat(conn: &Connection, t: &InitialAccessToken) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO initial_access_tokens (id, organization_id, token_hash, created_at, expires_at, revoked, \
         profile, max_uses, uses, allowed_cidr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        t.id,
        t.organization_id,
        &t.token_hash[..],
        t.created_at,
        t.expires_at,
        t.revoked,
        t.profile,
        t.max_uses,
        t.uses,
        t.allowed_cidr
    ])
}
