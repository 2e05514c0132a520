//! The PostgreSQL backend, for deployments that run several replicas against
//! one shared database.
//!
//! Every write is its own transaction on a pooled connection: single-row
//! writes rely on PostgreSQL's implicit transaction, and writes that touch
//! several rows or check before they write (bootstrap, signing keys, usage
//! batches, purges, audited changes) open an explicit one. Unlike the SQLite
//! backend there is no group-commit writer here, and none is
//! needed: PostgreSQL itself groups the WAL flushes of concurrently
//! committing transactions, so many connections writing at once share the
//! cost of each `fsync` while every write is acknowledged only once durable
//! (with `synchronous_commit` at its default, `on`).
//!
//! The user flows (users, sessions, consent, codes, grants) live in the
//! `users` module.

use async_trait::async_trait;
use charter_store::audit::{self, AuditEvent};
use charter_store::*;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::str::FromStr;

mod users;

/// Most connections one store holds open.
const MAX_CONNECTIONS: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
}

fn db_err(e: sqlx::Error) -> Error {
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

fn parse_url(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|e| Error::Database(format!("invalid PostgreSQL URL: {e}")))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://...`) and applies
    /// pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::connect(parse_url(url)?).await
    }

    /// Like [`open`](Self::open), but keeps every table (and the migration
    /// history) in `schema`, creating it if missing. Lets tests share one
    /// database without sharing data. `schema` may contain only lowercase
    /// ASCII letters, digits and `_`.
    pub async fn open_with_schema(url: &str, schema: &str) -> Result<Self> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::Database(format!(
                "invalid schema name {schema:?}: use 1 to 63 characters among a-z, 0-9 and _"
            )));
        }
        let options = parse_url(url)?;
        let mut conn = PgConnection::connect_with(&options).await.map_err(db_err)?;
        let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        match created {
            // Two sessions creating the same schema at once can both pass the
            // IF NOT EXISTS check; the loser sees a unique violation, and the
            // schema exists either way.
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {}
            Err(e) => return Err(db_err(e)),
        }
        Self::connect(options.options([("search_path", schema)])).await
    }

    async fn connect(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        if let Err(e) = sqlx::migrate!("./migrations").run(&pool).await {
            pool.close().await;
            return Err(Error::Migration(e.to_string()));
        }
        Ok(Self { pool })
    }
}

fn hash_of(row: &PgRow, column: &str) -> Result<TokenHash> {
    let bytes: Vec<u8> = row.try_get(column).map_err(db_err)?;
    bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{column} is not 32 bytes")))
}

fn organization_from_row(row: &PgRow) -> Result<Organization> {
    Ok(Organization {
        id: row.try_get("id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        status: row.try_get("status").map_err(db_err)?,
    })
}

fn initial_access_token_from_row(row: &PgRow) -> Result<InitialAccessToken> {
    Ok(InitialAccessToken {
        id: row.try_get("id").map_err(db_err)?,
        organization_id: row.try_get("organization_id").map_err(db_err)?,
        token_hash: hash_of(row, "token_hash")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
        revoked: row.try_get("revoked").map_err(db_err)?,
        profile: row.try_get("profile").map_err(db_err)?,
        max_uses: row.try_get("max_uses").map_err(db_err)?,
        uses: row.try_get("uses").map_err(db_err)?,
        allowed_cidr: row.try_get("allowed_cidr").map_err(db_err)?,
    })
}

fn optional_hash_of(row: &PgRow, column: &str) -> Result<Option<TokenHash>> {
    let bytes: Option<Vec<u8>> = row.try_get(column).map_err(db_err)?;
    bytes
        .map(|b| {
            b.try_into()
                .map_err(|_| Error::Corrupt(format!("{column} is not 32 bytes")))
        })
        .transpose()
}

/// The columns [`client_from_row`] decodes, as a literal so that queries can
/// be built with `concat!` and stay `&'static str`.
macro_rules! client_columns {
    () => {
        "client_id, organization_id, initial_access_token_id, metadata, secret_hash, \
         secret_expires_at, registration_token_hash, issued_at, updated_at, profile, policy_version, \
         status, expires_at, approval, approved_until, last_used_at, previous_secret_hash, \
         previous_secret_expires_at, document_fresh_until, document_digest"
    };
}

fn client_from_row(row: &PgRow) -> Result<ClientRecord> {
    let metadata: String = row.try_get("metadata").map_err(db_err)?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id").map_err(db_err)?,
        organization_id: row.try_get("organization_id").map_err(db_err)?,
        initial_access_token_id: row.try_get("initial_access_token_id").map_err(db_err)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| Error::Corrupt(format!("client metadata: {e}")))?,
        secret_hash: optional_hash_of(row, "secret_hash")?,
        secret_expires_at: row.try_get("secret_expires_at").map_err(db_err)?,
        registration_token_hash: hash_of(row, "registration_token_hash")?,
        issued_at: row.try_get("issued_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
        profile: row.try_get("profile").map_err(db_err)?,
        policy_version: row.try_get("policy_version").map_err(db_err)?,
        status: {
            let text: String = row.try_get("status").map_err(db_err)?;
            ClientStatus::parse(&text)
                .ok_or_else(|| Error::Corrupt(format!("unknown client status {text:?}")))?
        },
        expires_at: row.try_get("expires_at").map_err(db_err)?,
        approval: row.try_get("approval").map_err(db_err)?,
        approved_until: row.try_get("approved_until").map_err(db_err)?,
        last_used_at: row.try_get("last_used_at").map_err(db_err)?,
        previous_secret_hash: optional_hash_of(row, "previous_secret_hash")?,
        previous_secret_expires_at: row.try_get("previous_secret_expires_at").map_err(db_err)?,
        document: match (
            row.try_get::<Option<i64>, _>("document_fresh_until")
                .map_err(db_err)?,
            optional_hash_of(row, "document_digest")?,
        ) {
            (Some(fresh_until), Some(digest)) => Some(DocumentState {
                fresh_until,
                digest,
            }),
            _ => None,
        },
    })
}

async fn insert_client_row(tx: &mut PgConnection, client: &ClientRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO clients (client_id, organization_id, initial_access_token_id, metadata, secret_hash, \
         secret_expires_at, registration_token_hash, issued_at, updated_at, profile, policy_version, status, \
         expires_at, approval, approved_until, last_used_at, previous_secret_hash, previous_secret_expires_at, \
         document_fresh_until, document_digest) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&client.client_id)
    .bind(&client.organization_id)
    .bind(&client.initial_access_token_id)
    .bind(client.metadata.to_string())
    .bind(client.secret_hash.as_ref().map(|h| &h[..]))
    .bind(client.secret_expires_at)
    .bind(&client.registration_token_hash[..])
    .bind(client.issued_at)
    .bind(client.updated_at)
    .bind(&client.profile)
    .bind(&client.policy_version)
    .bind(client.status.as_str())
    .bind(client.expires_at)
    .bind(&client.approval)
    .bind(client.approved_until)
    .bind(client.last_used_at)
    .bind(client.previous_secret_hash.as_ref().map(|h| &h[..]))
    .bind(client.previous_secret_expires_at)
    .bind(client.document.map(|d| d.fresh_until))
    .bind(client.document.as_ref().map(|d| &d.digest[..]))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn key_from_row(row: &PgRow) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid").map_err(db_err)?,
        alg: row.try_get("alg").map_err(db_err)?,
        private_pkcs8: row.try_get("private_pkcs8").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        activates_at: row.try_get("activates_at").map_err(db_err)?,
    })
}

async fn insert_iat<'e, E>(executor: E, t: &InitialAccessToken) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query(
        "INSERT INTO initial_access_tokens (id, organization_id, token_hash, created_at, expires_at, revoked, \
         profile, max_uses, uses, allowed_cidr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&t.id)
    .bind(&t.organization_id)
    .bind(&t.token_hash[..])
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.revoked)
    .bind(&t.profile)
    .bind(t.max_uses)
    .bind(t.uses)
    .bind(&t.allowed_cidr)
    .execute(executor)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Any fixed number: the advisory lock that serializes appends to the audit
/// chain across every replica, for the rest of the transaction.
const AUDIT_LOCK: i64 = 0x0063_6861_7274_6572;

/// Another fixed number, outside the range of `hashtext` (which keys the
/// per-organization quota locks): the advisory lock that serializes the
/// scheduling of next signing keys across replicas.
const SIGNING_KEY_LOCK: i64 = 0x0063_6861_726b_6579;

/// Appends `event` to the audit chain inside `tx`.
async fn append_audit_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    event: &AuditEvent,
) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    let (seq, hash) = match head {
        Some(row) => (
            row.try_get::<i64, _>("seq").map_err(db_err)?,
            hash_of(&row, "hash")?,
        ),
        None => (0, audit::GENESIS),
    };
    let record = audit::next_record(seq, hash, event);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, event, prev_hash, hash) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(record.seq)
    .bind(record.at)
    .bind(&record.event_json)
    .bind(&record.prev_hash[..])
    .bind(&record.hash[..])
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The one statement that applies `change`, or `None` for the changes that
/// take several (see `Store::apply_change`).
fn single_statement(change: &Change) -> Option<Query<'_, sqlx::Postgres, PgArguments>> {
    let run = |sql: &'static str| sqlx::query(sql);
    Some(match change {
        Change::ApproveClient { client_id, approval, until } => run(
            "UPDATE clients SET status = 'active', approval = $2, approved_until = $3 \
             WHERE client_id = $1 AND status = 'pending'",
        )
        .bind(client_id)
        .bind(approval)
        .bind(*until),
        Change::LapseApproval { client_id, now } => {
            run("UPDATE clients SET status = 'pending' WHERE client_id = $1 AND status = 'active' AND approved_until < $2")
                .bind(client_id)
                .bind(*now)
        }
        Change::RejectClient { client_id, approval } => run(
            "UPDATE clients SET status = 'rejected', approval = $2 WHERE client_id = $1 AND status = 'pending'",
        )
        .bind(client_id)
        .bind(approval),
        Change::SetOrganizationStatus { organization_id, from, to } => {
            run("UPDATE organizations SET status = $3 WHERE id = $1 AND status = $2")
                .bind(organization_id)
                .bind(from)
                .bind(to)
        }
        Change::OffboardOrganization { organization_id } => {
            run("UPDATE organizations SET status = 'offboarded' WHERE id = $1 AND status <> 'offboarded'")
                .bind(organization_id)
        }
        Change::InsertAdminToken { id, token_hash, role, created_at } => {
            run("INSERT INTO admin_tokens (token_hash, created_at, id, role) VALUES ($1, $2, $3, $4)")
                .bind(&token_hash[..])
                .bind(*created_at)
                .bind(id)
                .bind(role)
        }
        Change::RevokeInitialAccessToken { id } => {
            run("UPDATE initial_access_tokens SET revoked = TRUE WHERE id = $1 AND NOT revoked").bind(id)
        }
        Change::ExpireClient { client_id, now } => run(
            "UPDATE clients SET status = 'expired', expires_at = LEAST(COALESCE(expires_at, $2), $2) \
             WHERE client_id = $1 AND status IN ('active', 'pending')",
        )
        .bind(client_id)
        .bind(*now),
        Change::RevokeClient { client_id } => run(
            "UPDATE clients SET status = 'revoked' WHERE client_id = $1 AND status IN ('active', 'pending')",
        )
        .bind(client_id),
        Change::RotateSecret {
            client_id,
            expected_secret_hash,
            secret_hash,
            secret_expires_at,
            previous_expires_at,
        } => run(
            // Every right-hand side reads the row as it was before the
            // update, so the previous secret is the one being replaced.
            "UPDATE clients SET previous_secret_hash = secret_hash, previous_secret_expires_at = $5, \
             secret_hash = $3, secret_expires_at = $4 WHERE client_id = $1 AND secret_hash = $2",
        )
        .bind(client_id)
        .bind(&expected_secret_hash[..])
        .bind(&secret_hash[..])
        .bind(*secret_expires_at)
        .bind(*previous_expires_at),
        Change::RevokeAccessToken { jti, client_id, expires_at } => run(
            "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(jti)
        .bind(client_id)
        .bind(*expires_at),
        Change::DeleteClient { .. }
        | Change::RemoveDocumentClient { .. }
        | Change::SetUserDisabled { .. }
        | Change::RevokeConsent { .. }
        | Change::RevokeGrant { .. } => return None,
    })
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

impl Describe for PostgresStore {
    fn durability(&self) -> String {
        "PostgreSQL, synchronous_commit as configured on the server (default on: each acknowledged write is durable), \
         one transaction per write"
            .into()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn bootstrap(&self, records: Bootstrap, audit: AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let created = sqlx::query(
            "INSERT INTO organizations (id, name, created_at, status) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&records.organization.id)
        .bind(&records.organization.name)
        .bind(records.organization.created_at)
        .bind(&records.organization.status)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if created {
            sqlx::query("INSERT INTO admin_tokens (token_hash, created_at) VALUES ($1, $2)")
                .bind(&records.admin_token_hash[..])
                .bind(records.organization.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            insert_iat(&mut *tx, &records.initial_access_token).await?;
            append_audit_in(&mut tx, &audit).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn organization_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let row =
            sqlx::query("SELECT id, name, created_at, status FROM organizations WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(organization_from_row).transpose()
    }

    async fn organization_by_id(&self, id: &str) -> Result<Option<Organization>> {
        let row =
            sqlx::query("SELECT id, name, created_at, status FROM organizations WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(organization_from_row).transpose()
    }

    async fn organizations(&self) -> Result<Vec<Organization>> {
        let rows =
            sqlx::query("SELECT id, name, created_at, status FROM organizations ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(organization_from_row).collect()
    }

    async fn initial_access_tokens(
        &self,
        organization_id: &str,
    ) -> Result<Vec<InitialAccessToken>> {
        let rows = sqlx::query(
            "SELECT id, organization_id, token_hash, created_at, expires_at, revoked, profile, max_uses, uses, allowed_cidr \
             FROM initial_access_tokens WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(initial_access_token_from_row).collect()
    }

    async fn lapsed_approvals(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE status = 'active' AND approved_until < $1 ORDER BY approved_until LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn pending_clients_before(&self, cutoff: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE status = 'pending' AND issued_at < $1 ORDER BY issued_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn apply_change(&self, change: Change, audit: AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let changed = match single_statement(&change) {
            Some(query) => {
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected()
                    == 1
            }
            None => match &change {
                Change::DeleteClient { client_id } => {
                    let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                        .bind(client_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?
                        .rows_affected()
                        == 1;
                    if deleted {
                        users::delete_client_data(&mut tx, client_id).await?;
                    }
                    deleted
                }
                Change::RemoveDocumentClient {
                    client_id,
                    expected_digest,
                } => {
                    let deleted = sqlx::query(
                        "DELETE FROM clients WHERE client_id = $1 AND document_digest = $2 \
                         AND status IN ('active', 'pending', 'expired')",
                    )
                    .bind(client_id)
                    .bind(&expected_digest[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected()
                        == 1;
                    if deleted {
                        users::delete_client_data(&mut tx, client_id).await?;
                    }
                    deleted
                }
                Change::SetUserDisabled { user_id, disabled } => {
                    users::set_user_disabled(&mut tx, user_id, *disabled).await?
                }
                Change::RevokeConsent { user_id, client_id } => {
                    users::revoke_consent(&mut tx, user_id, client_id).await?
                }
                Change::RevokeGrant {
                    grant_id,
                    client_id,
                    user_id,
                    now,
                } => users::revoke_grant(&mut tx, grant_id, client_id, user_id, *now).await?,
                // `single_statement` builds the query of every other change.
                _ => false,
            },
        };
        if !changed {
            return Ok(false);
        }
        if let Change::OffboardOrganization { organization_id } = &change {
            for sql in [
                "UPDATE clients SET status = 'revoked' WHERE organization_id = $1",
                "UPDATE initial_access_tokens SET revoked = TRUE WHERE organization_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(organization_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn insert_organization(&self, org: Organization) -> Result<()> {
        sqlx::query(
            "INSERT INTO organizations (id, name, created_at, status) VALUES ($1, $2, $3, $4)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.created_at)
        .bind(&org.status)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn admin_token(&self, hash: &TokenHash) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT coalesce(id, 'bootstrap') AS id, role FROM admin_tokens WHERE token_hash = $1",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok((
                r.try_get("id").map_err(db_err)?,
                r.try_get("role").map_err(db_err)?,
            ))
        })
        .transpose()
    }

    async fn insert_initial_access_token(
        &self,
        token: InitialAccessToken,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_iat(&mut *tx, &token).await?;
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn initial_access_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<InitialAccessToken>> {
        let row = sqlx::query(
            "SELECT id, organization_id, token_hash, created_at, expires_at, revoked \
             , profile, max_uses, uses, allowed_cidr FROM initial_access_tokens WHERE token_hash = $1",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(initial_access_token_from_row).transpose()
    }

    async fn insert_client(
        &self,
        client: ClientRecord,
        quota: Option<u64>,
        audit: AuditEvent,
    ) -> Result<Inserted> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if let Some(quota) = quota {
            // Serialize inserts of this organization across replicas for the
            // rest of the transaction, then count: the quota holds exactly.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&client.organization_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE organization_id = $1")
                    .bind(&client.organization_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if count.max(0) as u64 >= quota {
                return Ok(Inserted::QuotaExceeded);
            }
        }
        // Count the use first, in the same transaction: the row lock makes
        // concurrent registrations on one token queue here, and a token at
        // its limit stores nothing.
        if let Some(iat) = &client.initial_access_token_id {
            let counted = sqlx::query(
                "UPDATE initial_access_tokens SET uses = uses + 1 \
                 WHERE id = $1 AND (max_uses IS NULL OR uses < max_uses)",
            )
            .bind(iat)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if counted.rows_affected() == 0 {
                return Ok(Inserted::CredentialExhausted);
            }
        }
        insert_client_row(&mut tx, &client).await?;
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Inserted::Stored)
    }

    async fn organization_client_count(&self, organization_id: &str) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(count.max(0) as u64)
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn client_count(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(count.max(0) as u64)
    }

    async fn update_client(&self, update: ClientUpdate, audit: AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let updated = sqlx::query(
            "UPDATE clients SET metadata = $1, secret_hash = $2, secret_expires_at = $3, \
             registration_token_hash = $4, updated_at = $5, policy_version = $8 \
             WHERE client_id = $6 AND registration_token_hash = $7",
        )
        .bind(update.metadata.to_string())
        .bind(update.secret_hash.as_ref().map(|h| &h[..]))
        .bind(update.secret_expires_at)
        .bind(&update.registration_token_hash[..])
        .bind(update.updated_at)
        .bind(&update.client_id)
        .bind(&update.expected_registration_token_hash[..])
        .bind(&update.policy_version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn refresh_document(
        &self,
        client_id: &str,
        digest: &TokenHash,
        fresh_until: i64,
        expires_at: i64,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE clients SET document_fresh_until = $3, expires_at = $4 \
             WHERE client_id = $1 AND document_digest = $2 AND status IN ('active', 'pending')",
        )
        .bind(client_id)
        .bind(&digest[..])
        .bind(fresh_until)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn replace_client(
        &self,
        expected_digest: &TokenHash,
        client: ClientRecord,
        audit: AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let deleted =
            sqlx::query("DELETE FROM clients WHERE client_id = $1 AND document_digest = $2 AND status IN ('active', 'pending', 'expired')")
                .bind(&client.client_id)
                .bind(&expected_digest[..])
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if deleted.rows_affected() != 1 {
            return Ok(false);
        }
        users::delete_client_data(&mut tx, &client.client_id).await?;
        insert_client_row(&mut tx, &client).await?;
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn delete_client(
        &self,
        client_id: &str,
        registration_token_hash: &TokenHash,
        audit: AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let deleted = sqlx::query(
            "DELETE FROM clients WHERE client_id = $1 AND registration_token_hash = $2",
        )
        .bind(client_id)
        .bind(&registration_token_hash[..])
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if deleted.rows_affected() != 1 {
            return Ok(false);
        }
        users::delete_client_data(&mut tx, client_id).await?;
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn append_audit(&self, audit: AuditEvent) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query("SELECT seq, at, event, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    seq: row.try_get("seq").map_err(db_err)?,
                    at: row.try_get("at").map_err(db_err)?,
                    event_json: row.try_get("event").map_err(db_err)?,
                    prev_hash: hash_of(row, "prev_hash")?,
                    hash: hash_of(row, "hash")?,
                })
            })
            .collect()
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_pkcs8, created_at, activates_at FROM signing_keys \
             ORDER BY activates_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn ensure_signing_keys(
        &self,
        keys: Vec<SigningKeyRecord>,
    ) -> Result<Vec<SigningKeyRecord>> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        for k in &keys {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, initial_for_alg, private_pkcs8, created_at, activates_at) \
                 VALUES ($1, $2, $2, $3, $4, $5) ON CONFLICT (initial_for_alg) DO NOTHING",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(&k.private_pkcs8)
            .bind(k.created_at)
            .bind(k.activates_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        self.signing_keys().await
    }

    async fn insert_next_signing_key(&self, key: SigningKeyRecord, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Serialize the check and the insert across replicas for the rest of
        // the transaction: the second caller's check (a new snapshot under
        // READ COMMITTED) sees the first caller's committed key.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SIGNING_KEY_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let pending: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM signing_keys WHERE alg = $1 AND activates_at > $2 LIMIT 1",
        )
        .bind(&key.alg)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if pending.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_pkcs8, created_at, activates_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_pkcs8)
        .bind(key.created_at)
        .bind(key.activates_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<()> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn client_in_use(&self, client_id: &str) -> Result<Option<ClientInUse>> {
        // The organization's columns are renamed in a derived table so that
        // none clashes with a client column of the same name (`status`).
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            ", organization_status FROM clients \
             JOIN (SELECT id AS org_id, status AS organization_status FROM organizations) o \
             ON o.org_id = clients.organization_id WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|row| {
            Ok(ClientInUse {
                client: client_from_row(&row)?,
                organization_status: row.try_get("organization_status").map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn touch_clients(&self, used: Vec<(String, i64)>) -> Result<()> {
        // One time per client, the latest, in client_id order.
        let mut latest = std::collections::BTreeMap::<String, i64>::new();
        for (client_id, at) in used {
            let entry = latest.entry(client_id).or_insert(at);
            *entry = (*entry).max(at);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let (ids, times): (Vec<String>, Vec<i64>) = latest.into_iter().unzip();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Lock the rows in client_id order first, so that replicas flushing
        // overlapping batches at once queue instead of deadlocking.
        sqlx::query(
            "SELECT client_id FROM clients WHERE client_id = ANY($1) ORDER BY client_id FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE clients SET last_used_at = used.at \
             FROM UNNEST($1::text[], $2::bigint[]) AS used(client_id, at) \
             WHERE clients.client_id = used.client_id \
             AND (clients.last_used_at IS NULL OR clients.last_used_at < used.at)",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn use_assertion_jti(
        &self,
        client_id: &str,
        jti_hash: &TokenHash,
        expires_at: i64,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO used_assertion_ids (client_id, jti_hash, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(&jti_hash[..])
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn access_token_revoked(&self, jti: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)")
            .bind(jti)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let mut purged = 0;
        for sql in [
            "DELETE FROM revoked_access_tokens WHERE expires_at < $1",
            "DELETE FROM used_assertion_ids WHERE expires_at < $1",
        ] {
            purged += sqlx::query(sql)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        purged += users::purge_expired(&mut tx, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(purged)
    }

    async fn clients_past_expiry(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE status IN ('active', 'pending') AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn clients_unused_since(&self, cutoff: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE status = 'active' AND issued_at < $1 \
             AND (last_used_at IS NULL OR last_used_at < $1) ORDER BY issued_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn expired_clients_before(&self, cutoff: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT client_id FROM clients WHERE status = 'expired' AND expires_at < $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn clients(&self, query: &ClientQuery) -> Result<Vec<ClientRecord>> {
        // NULLS FIRST: the order SQLite gives, so both backends list alike.
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE ($1::text IS NULL OR organization_id = $1) \
             AND ($2::text IS NULL OR status = $2) \
             AND ($3::bigint IS NULL OR expires_at < $3) \
             AND ($4::bigint IS NULL OR (issued_at < $4 AND (last_used_at IS NULL OR last_used_at < $4))) \
             AND ($5::text IS NULL OR \
                  (CASE WHEN initial_access_token_id IS NULL THEN 'anonymous' ELSE 'iat' END) = $5) \
             ORDER BY expires_at NULLS FIRST, client_id LIMIT $6"
        ))
        .bind(&query.organization_id)
        .bind(query.status.map(ClientStatus::as_str))
        .bind(query.expires_before)
        .bind(query.unused_since)
        .bind(&query.registration_path)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn client_counts(&self) -> Result<Vec<ClientCount>> {
        let rows = sqlx::query(
            "SELECT organization_id, \
             CASE WHEN initial_access_token_id IS NULL THEN 'anonymous' ELSE 'iat' END AS path, \
             status, COUNT(*) AS count FROM clients \
             GROUP BY organization_id, path, status ORDER BY organization_id, path, status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status").map_err(db_err)?;
                Ok(ClientCount {
                    organization_id: row.try_get("organization_id").map_err(db_err)?,
                    registration_path: row.try_get("path").map_err(db_err)?,
                    status: ClientStatus::parse(&status).ok_or_else(|| {
                        Error::Corrupt(format!("unknown client status {status:?}"))
                    })?,
                    count: row.try_get::<i64, _>("count").map_err(db_err)?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn insert_user(&self, user: User, audit: AuditEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // A taken username stores nothing; a taken id is an error (ids are
        // generated, so it is a bug, not a user's choice).
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, name, email, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.disabled)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() != 1 {
            return Ok(false);
        }
        append_audit_in(&mut tx, &audit).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM users WHERE id = $1",
            users::USER_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(users::user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM users WHERE username = $1",
            users::USER_COLUMNS
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(users::user).transpose()
    }

    async fn users(&self, limit: u32) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM users ORDER BY username LIMIT $1",
            users::USER_COLUMNS
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(users::user).collect()
    }

    async fn insert_session(&self, session: Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, auth_time, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.id_hash[..])
        .bind(&session.user_id)
        .bind(session.auth_time)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session(&self, id_hash: &TokenHash) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, auth_time, expires_at FROM sessions WHERE id_hash = $1",
        )
        .bind(&id_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(users::session).transpose()
    }

    async fn delete_session(&self, id_hash: &TokenHash) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash[..])
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn insert_interaction(&self, interaction: Interaction) -> Result<()> {
        sqlx::query(
            "INSERT INTO interactions (id, browser_hash, client_id, request, user_id, auth_time, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&interaction.id)
        .bind(&interaction.browser_hash[..])
        .bind(&interaction.client_id)
        .bind(interaction.request.to_string())
        .bind(&interaction.user_id)
        .bind(interaction.auth_time)
        .bind(interaction.created_at)
        .bind(interaction.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn interaction(&self, id: &str) -> Result<Option<Interaction>> {
        let row = sqlx::query(
            "SELECT id, browser_hash, client_id, request, user_id, auth_time, created_at, expires_at \
             FROM interactions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(users::interaction).transpose()
    }

    async fn set_interaction_user(&self, id: &str, user_id: &str, auth_time: i64) -> Result<bool> {
        let updated =
            sqlx::query("UPDATE interactions SET user_id = $2, auth_time = $3 WHERE id = $1")
                .bind(id)
                .bind(user_id)
                .bind(auth_time)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn complete_interaction(
        &self,
        id: &str,
        code: AuthorizationCode,
        consent: Option<Consent>,
        audit: Option<AuditEvent>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if !users::complete_interaction(&mut tx, id, &code, consent.as_ref()).await? {
            return Ok(false);
        }
        if let Some(audit) = &audit {
            append_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn finish_interaction(&self, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM interactions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>> {
        let row = sqlx::query(
            "SELECT user_id, client_id, scope, resources, granted_at FROM consents \
             WHERE user_id = $1 AND client_id = $2",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(users::consent).transpose()
    }

    async fn consents(&self, user_id: &str) -> Result<Vec<Consent>> {
        let rows = sqlx::query(
            "SELECT user_id, client_id, scope, resources, granted_at FROM consents \
             WHERE user_id = $1 ORDER BY client_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(users::consent).collect()
    }

    async fn take_code(&self, code_hash: &TokenHash) -> Result<Option<AuthorizationCode>> {
        let row = sqlx::query(
            "SELECT code_hash, grant_id, client_id, user_id, redirect_uri, scope, resources, code_challenge, \
             nonce, auth_time, dpop_jkt, expires_at, used FROM authorization_codes WHERE code_hash = $1",
        )
        .bind(&code_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(mut code) = row.as_ref().map(users::code).transpose()? else {
            return Ok(None);
        };
        if !code.used {
            // Marked used only if it still is unused: of concurrent callers
            // (on any replica) the row lock lets exactly one update it.
            let taken = sqlx::query(
                "UPDATE authorization_codes SET used = TRUE WHERE code_hash = $1 AND NOT used",
            )
            .bind(&code_hash[..])
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            code.used = taken.rows_affected() != 1;
        }
        Ok(Some(code))
    }

    async fn issue(&self, issue: Issue) -> Result<bool> {
        check_issue(&issue)?;
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if !users::issue(&mut tx, &issue).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn refresh_token(&self, token_hash: &TokenHash) -> Result<Option<(RefreshToken, Grant)>> {
        let row = sqlx::query(
            "SELECT t.token_hash, t.grant_id, t.client_id, t.issued_at, t.expires_at, t.used, \
             g.id AS g_id, g.client_id AS g_client_id, g.user_id AS g_user_id, g.scope AS g_scope, \
             g.resources AS g_resources, g.auth_time AS g_auth_time, g.created_at AS g_created_at, \
             g.expires_at AS g_expires_at, g.revoked AS g_revoked, g.dpop_jkt AS g_dpop_jkt \
             FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(users::refresh_token).transpose()
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
