//! The group-commit writer: one task, one connection, one transaction per
//! batch of queued writes.
//!
//! A write that fails (say, a duplicate key) is rolled back alone and
//! reported to its caller while the rest of the batch commits: one-statement
//! writes get this from SQLite's statement atomicity, multi-statement writes
//! from a savepoint of their own. Callers are answered only after `COMMIT`
//! returns, i.e. after SQLite has synced the WAL.

use charter_store::{
    Bootstrap, ClientRecord, ClientUpdate, Error, InitialAccessToken, Organization, Result,
    SigningKeyRecord, TokenHash,
};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::db_err;

/// Most writes applied in one transaction; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

pub(crate) enum WriteOp {
    Bootstrap(Bootstrap),
    InsertOrganization(Organization),
    InsertInitialAccessToken(InitialAccessToken),
    InsertClient(Box<ClientRecord>),
    UpdateClient(Box<ClientUpdate>),
    DeleteClient(String, TokenHash),
    EnsureSigningKeys(Vec<SigningKeyRecord>),
}

type Job = (WriteOp, oneshot::Sender<Result<bool>>);

pub(crate) struct Writer {
    /// `None` once closed. Callers clone the sender, so the task keeps
    /// running until every in-flight write has been answered.
    queue: std::sync::RwLock<Option<mpsc::Sender<Job>>>,
    finished: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Writer {
    /// Opens the write connection, applies migrations and starts the writer
    /// on its own thread, so that a slow `fsync` never blocks a request worker.
    pub(crate) async fn start(options: SqliteConnectOptions) -> Result<Self> {
        let (queue, rx) = mpsc::channel(4096);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (finished_tx, finished_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("charter-sqlite-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Database(format!("writer runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let conn = match open_writer(&options).await {
                        Ok(conn) => conn,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    run(conn, rx).await;
                });
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

async fn open_writer(options: &SqliteConnectOptions) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::connect_with(options)
        .await
        .map_err(db_err)?;
    sqlx::migrate!("./migrations")
        .run(&mut conn)
        .await
        .map_err(|e| Error::Migration(e.to_string()))?;
    Ok(conn)
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = apply_batch(&mut conn, &batch).await;
        for ((_, reply), result) in batch.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }
    let _ = conn.close().await;
}

async fn apply_batch(conn: &mut SqliteConnection, batch: &[Job]) -> Vec<Result<bool>> {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let message = e.to_string();
        return batch
            .iter()
            .map(|_| Err(Error::Database(message.clone())))
            .collect();
    }
    let mut results = Vec::with_capacity(batch.len());
    for (op, _) in batch {
        results.push(apply_one(conn, op).await);
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => results,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; rolling back the batch");
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            let message = e.to_string();
            batch
                .iter()
                .map(|_| Err(Error::Database(message.clone())))
                .collect()
        }
    }
}

async fn apply_one(conn: &mut SqliteConnection, op: &WriteOp) -> Result<bool> {
    // A single statement that fails is undone by itself and leaves the
    // transaction open (SQLite's default ABORT conflict resolution), so only
    // writes of several statements need a savepoint. This saves two round
    // trips to the connection per registration on the hot path.
    let multi_statement = matches!(op, WriteOp::Bootstrap(_) | WriteOp::EnsureSigningKeys(_));
    if !multi_statement {
        return apply_statements(conn, op).await;
    }
    sqlx::query("SAVEPOINT op")
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let result = apply_statements(conn, op).await;
    let finish = if result.is_ok() {
        "RELEASE op"
    } else {
        "ROLLBACK TO op; RELEASE op"
    };
    sqlx::raw_sql(finish)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    result
}

async fn apply_statements(conn: &mut SqliteConnection, op: &WriteOp) -> Result<bool> {
    match op {
        WriteOp::Bootstrap(b) => {
            let created = sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING")
                .bind(&b.organization.id)
                .bind(&b.organization.name)
                .bind(b.organization.created_at)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
            if created {
                sqlx::query("INSERT INTO admin_tokens (token_hash, created_at) VALUES (?, ?)")
                    .bind(&b.admin_token_hash[..])
                    .bind(b.organization.created_at)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
                insert_iat(conn, &b.initial_access_token).await?;
            }
            Ok(created)
        }
        WriteOp::InsertOrganization(o) => {
            sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
                .bind(&o.id)
                .bind(&o.name)
                .bind(o.created_at)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            Ok(true)
        }
        WriteOp::InsertInitialAccessToken(t) => insert_iat(conn, t).await.map(|_| true),
        WriteOp::InsertClient(c) => {
            sqlx::query(
                "INSERT INTO clients (client_id, organization_id, initial_access_token_id, metadata, secret_hash, \
                 secret_expires_at, registration_token_hash, issued_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.client_id)
            .bind(&c.organization_id)
            .bind(&c.initial_access_token_id)
            .bind(c.metadata.to_string())
            .bind(c.secret_hash.as_ref().map(|h| &h[..]))
            .bind(c.secret_expires_at)
            .bind(&c.registration_token_hash[..])
            .bind(c.issued_at)
            .bind(c.updated_at)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            Ok(true)
        }
        WriteOp::UpdateClient(u) => {
            let updated = sqlx::query(
                "UPDATE clients SET metadata = ?, secret_hash = ?, secret_expires_at = ?, \
                 registration_token_hash = ?, updated_at = ? WHERE client_id = ? AND registration_token_hash = ?",
            )
            .bind(u.metadata.to_string())
            .bind(u.secret_hash.as_ref().map(|h| &h[..]))
            .bind(u.secret_expires_at)
            .bind(&u.registration_token_hash[..])
            .bind(u.updated_at)
            .bind(&u.client_id)
            .bind(&u.expected_registration_token_hash[..])
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            Ok(updated.rows_affected() == 1)
        }
        WriteOp::DeleteClient(client_id, rat) => {
            let deleted = sqlx::query(
                "DELETE FROM clients WHERE client_id = ? AND registration_token_hash = ?",
            )
            .bind(client_id)
            .bind(&rat[..])
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
            Ok(deleted.rows_affected() == 1)
        }
        WriteOp::EnsureSigningKeys(keys) => {
            for k in keys {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, initial_for_alg, private_pkcs8, created_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (initial_for_alg) DO NOTHING",
                )
                .bind(&k.kid)
                .bind(&k.alg)
                .bind(&k.alg)
                .bind(&k.private_pkcs8)
                .bind(k.created_at)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            }
            Ok(true)
        }
    }
}

async fn insert_iat(conn: &mut SqliteConnection, t: &InitialAccessToken) -> Result<()> {
    sqlx::query(
        "INSERT INTO initial_access_tokens (id, organization_id, token_hash, created_at, expires_at, revoked) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.organization_id)
    .bind(&t.token_hash[..])
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.revoked)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}
