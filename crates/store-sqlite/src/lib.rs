//! The embedded default backend: SQLite in WAL mode with `synchronous=FULL`.
//!
//! Reads go through a small pool of connections. Writes go through one
//! writer task that owns the only write connection and practices group
//! commit: it takes every write waiting in its queue, applies them in one
//! transaction, syncs once, and only then answers each caller. A
//! registration is therefore acknowledged only after its row is on disk,
//! while concurrent registrations share the cost of one `fsync`.

mod writer;

use async_trait::async_trait;
use charter_store::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

use writer::{WriteOp, Writer};

pub struct SqliteStore {
    reads: SqlitePool,
    writer: Writer,
}

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Error::Conflict(d.message().to_owned())
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            Error::Database(format!("referenced record does not exist: {}", d.message()))
        }
        _ => Error::Database(e.to_string()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Database(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: every commit syncs the WAL, so an acknowledged write
            // survives power loss. Group commit keeps this affordable.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = Writer::start(options.clone()).await?;
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_err)?;
        Ok(Self { reads, writer })
    }
}

fn hash_of(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<TokenHash> {
    let bytes: Vec<u8> = row.try_get(column).map_err(db_err)?;
    bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{column} is not 32 bytes")))
}

fn client_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ClientRecord> {
    let metadata: String = row.try_get("metadata").map_err(db_err)?;
    let secret_hash: Option<Vec<u8>> = row.try_get("secret_hash").map_err(db_err)?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id").map_err(db_err)?,
        organization_id: row.try_get("organization_id").map_err(db_err)?,
        initial_access_token_id: row.try_get("initial_access_token_id").map_err(db_err)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| Error::Corrupt(format!("client metadata: {e}")))?,
        secret_hash: secret_hash
            .map(|b| {
                b.try_into()
                    .map_err(|_| Error::Corrupt("secret_hash is not 32 bytes".into()))
            })
            .transpose()?,
        secret_expires_at: row.try_get("secret_expires_at").map_err(db_err)?,
        registration_token_hash: hash_of(row, "registration_token_hash")?,
        issued_at: row.try_get("issued_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

pub(crate) fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid").map_err(db_err)?,
        alg: row.try_get("alg").map_err(db_err)?,
        private_pkcs8: row.try_get("private_pkcs8").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
    })
}

impl Describe for SqliteStore {
    fn durability(&self) -> String {
        "SQLite WAL, synchronous=FULL (each acknowledged write is fsynced), group commit".into()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn bootstrap(&self, records: Bootstrap) -> Result<bool> {
        self.writer.submit(WriteOp::Bootstrap(records)).await
    }

    async fn organization_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reads)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Organization {
                id: r.try_get("id").map_err(db_err)?,
                name: r.try_get("name").map_err(db_err)?,
                created_at: r.try_get("created_at").map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn insert_organization(&self, org: Organization) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertOrganization(org))
            .await
            .map(drop)
    }

    async fn admin_token_exists(&self, hash: &TokenHash) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM admin_tokens WHERE token_hash = ?")
            .bind(&hash[..])
            .fetch_optional(&self.reads)
            .await
            .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn insert_initial_access_token(&self, token: InitialAccessToken) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertInitialAccessToken(token))
            .await
            .map(drop)
    }

    async fn initial_access_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<InitialAccessToken>> {
        let row = sqlx::query(
            "SELECT id, organization_id, token_hash, created_at, expires_at, revoked \
             FROM initial_access_tokens WHERE token_hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.reads)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(InitialAccessToken {
                id: r.try_get("id").map_err(db_err)?,
                organization_id: r.try_get("organization_id").map_err(db_err)?,
                token_hash: hash_of(&r, "token_hash")?,
                created_at: r.try_get("created_at").map_err(db_err)?,
                expires_at: r.try_get("expires_at").map_err(db_err)?,
                revoked: r.try_get("revoked").map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn insert_client(&self, client: ClientRecord) -> Result<()> {
        self.writer
            .submit(WriteOp::InsertClient(Box::new(client)))
            .await
            .map(drop)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(
            "SELECT client_id, organization_id, initial_access_token_id, metadata, secret_hash, \
             secret_expires_at, registration_token_hash, issued_at, updated_at \
             FROM clients WHERE client_id = ?",
        )
        .bind(client_id)
        .fetch_optional(&self.reads)
        .await
        .map_err(db_err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn client_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.reads)
            .await
            .map_err(db_err)?;
        Ok(count.max(0) as u64)
    }

    async fn update_client(&self, update: ClientUpdate) -> Result<bool> {
        self.writer
            .submit(WriteOp::UpdateClient(Box::new(update)))
            .await
    }

    async fn delete_client(
        &self,
        client_id: &str,
        registration_token_hash: &TokenHash,
    ) -> Result<bool> {
        self.writer
            .submit(WriteOp::DeleteClient(
                client_id.to_owned(),
                *registration_token_hash,
            ))
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_pkcs8, created_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.reads)
        .await
        .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn ensure_signing_keys(
        &self,
        keys: Vec<SigningKeyRecord>,
    ) -> Result<Vec<SigningKeyRecord>> {
        self.writer.submit(WriteOp::EnsureSigningKeys(keys)).await?;
        self.signing_keys().await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reads.close().await;
    }
}
