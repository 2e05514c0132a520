//! The user flows in PostgreSQL: end users, sessions, interactions,
//! consent, authorization codes, grants and refresh tokens.
//!
//! Each function that changes several rows takes the transaction it runs
//! in; the `Store` implementation opens and commits it. Revocation and
//! issuance lock the grant row, so a grant revoked while tokens are being
//! issued from it either refuses the issuance or revokes its tokens too.

use charter_store::{AuthorizationCode, Consent, Grant, Interaction, Issue, RefreshToken};
use charter_store::{Error, Result, Session, UnixTime, User};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::{db_err, hash_of};

/// How long a revoked grant recorded for a code that was never redeemed is
/// kept: far longer than any code lives, so the code's late first
/// redemption still finds it.
const TOMBSTONE_LIFETIME: i64 = 24 * 60 * 60;

/// The JSON text stored for a list of resources.
fn resources_json(resources: &[String]) -> String {
    serde_json::Value::from(resources.to_vec()).to_string()
}

fn resources_of(row: &PgRow, column: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(column).map_err(db_err)?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db_err)
}

pub(crate) const USER_COLUMNS: &str =
    "id, username, password_hash, name, email, disabled, created_at";

pub(crate) fn user(row: &PgRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        username: get(row, "username")?,
        password_hash: get(row, "password_hash")?,
        name: get(row, "name")?,
        email: get(row, "email")?,
        disabled: get(row, "disabled")?,
        created_at: get(row, "created_at")?,
    })
}

pub(crate) fn session(row: &PgRow) -> Result<Session> {
    Ok(Session {
        id_hash: hash_of(row, "id_hash")?,
        user_id: get(row, "user_id")?,
        auth_time: get(row, "auth_time")?,
        expires_at: get(row, "expires_at")?,
    })
}

pub(crate) fn interaction(row: &PgRow) -> Result<Interaction> {
    let request: String = get(row, "request")?;
    Ok(Interaction {
        id: get(row, "id")?,
        browser_hash: hash_of(row, "browser_hash")?,
        client_id: get(row, "client_id")?,
        request: serde_json::from_str(&request)
            .map_err(|e| Error::Corrupt(format!("interaction request: {e}")))?,
        user_id: get(row, "user_id")?,
        auth_time: get(row, "auth_time")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

pub(crate) fn consent(row: &PgRow) -> Result<Consent> {
    Ok(Consent {
        user_id: get(row, "user_id")?,
        client_id: get(row, "client_id")?,
        scope: get(row, "scope")?,
        resources: resources_of(row, "resources")?,
        granted_at: get(row, "granted_at")?,
    })
}

pub(crate) fn code(row: &PgRow) -> Result<AuthorizationCode> {
    Ok(AuthorizationCode {
        code_hash: hash_of(row, "code_hash")?,
        grant_id: get(row, "grant_id")?,
        client_id: get(row, "client_id")?,
        user_id: get(row, "user_id")?,
        redirect_uri: get(row, "redirect_uri")?,
        scope: get(row, "scope")?,
        resources: resources_of(row, "resources")?,
        code_challenge: get(row, "code_challenge")?,
        nonce: get(row, "nonce")?,
        auth_time: get(row, "auth_time")?,
        dpop_jkt: get(row, "dpop_jkt")?,
        expires_at: get(row, "expires_at")?,
        used: get(row, "used")?,
    })
}

/// A refresh token joined with its grant; the grant's columns carry a `g_`
/// prefix (see the query in `Store::refresh_token`).
pub(crate) fn refresh_token(row: &PgRow) -> Result<(RefreshToken, Grant)> {
    let token = RefreshToken {
        token_hash: hash_of(row, "token_hash")?,
        grant_id: get(row, "grant_id")?,
        client_id: get(row, "client_id")?,
        issued_at: get(row, "issued_at")?,
        expires_at: get(row, "expires_at")?,
        used: get(row, "used")?,
    };
    let grant = Grant {
        id: get(row, "g_id")?,
        client_id: get(row, "g_client_id")?,
        user_id: get(row, "g_user_id")?,
        scope: get(row, "g_scope")?,
        resources: resources_of(row, "g_resources")?,
        auth_time: get(row, "g_auth_time")?,
        created_at: get(row, "g_created_at")?,
        expires_at: get(row, "g_expires_at")?,
        revoked: get(row, "g_revoked")?,
        dpop_jkt: get(row, "g_dpop_jkt")?,
    };
    Ok((token, grant))
}

/// Ends the interaction and stores its code and consent; false (storing
/// nothing once the caller drops the transaction) if it was already
/// finished. Of two concurrent calls the second waits for the first's row
/// lock, then finds the row gone.
pub(crate) async fn complete_interaction(
    tx: &mut PgConnection,
    id: &str,
    code: &AuthorizationCode,
    consent: Option<&Consent>,
) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM interactions WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if deleted.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id, redirect_uri, scope, \
         resources, code_challenge, nonce, auth_time, dpop_jkt, expires_at, used) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&code.code_hash[..])
    .bind(&code.grant_id)
    .bind(&code.client_id)
    .bind(&code.user_id)
    .bind(&code.redirect_uri)
    .bind(&code.scope)
    .bind(resources_json(&code.resources))
    .bind(&code.code_challenge)
    .bind(&code.nonce)
    .bind(code.auth_time)
    .bind(&code.dpop_jkt)
    .bind(code.expires_at)
    .bind(code.used)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    if let Some(c) = consent {
        // Make sure a row exists, then lock it: concurrent consents merge
        // one after the other instead of the last one winning.
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, resources, granted_at) \
             VALUES ($1, $2, '', '[]', $3) ON CONFLICT (user_id, client_id) DO NOTHING",
        )
        .bind(&c.user_id)
        .bind(&c.client_id)
        .bind(c.granted_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(
            "SELECT user_id, client_id, scope, resources, granted_at FROM consents \
             WHERE user_id = $1 AND client_id = $2 FOR UPDATE",
        )
        .bind(&c.user_id)
        .bind(&c.client_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let earlier = Consent {
            user_id: row.try_get("user_id").map_err(db_err)?,
            client_id: row.try_get("client_id").map_err(db_err)?,
            scope: row.try_get("scope").map_err(db_err)?,
            resources: resources_of(&row, "resources")?,
            granted_at: row.try_get("granted_at").map_err(db_err)?,
        };
        let c = &c.merged_into(&earlier);
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, resources, granted_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = EXCLUDED.scope, \
             resources = EXCLUDED.resources, granted_at = EXCLUDED.granted_at",
        )
        .bind(&c.user_id)
        .bind(&c.client_id)
        .bind(&c.scope)
        .bind(resources_json(&c.resources))
        .bind(c.granted_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    Ok(true)
}

/// Records one issuance (see [`Issue`]); false when refused, in which case
/// the caller drops the transaction and whatever was written is undone.
pub(crate) async fn issue(tx: &mut PgConnection, issue: &Issue) -> Result<bool> {
    match &issue.grant {
        Some(g) => {
            // A concurrent revocation recording this grant makes one of the
            // two inserts wait for the other; if the revocation wins, the
            // grant exists and nothing is issued.
            let inserted = sqlx::query(
                "INSERT INTO grants (id, client_id, user_id, scope, resources, auth_time, created_at, \
                 expires_at, revoked, dpop_jkt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(&g.user_id)
            .bind(&g.scope)
            .bind(resources_json(&g.resources))
            .bind(g.auth_time)
            .bind(g.created_at)
            .bind(g.expires_at)
            .bind(g.revoked)
            .bind(&g.dpop_jkt)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if inserted.rows_affected() != 1 {
                return Ok(false);
            }
        }
        None => {
            // FOR SHARE: a revocation's update of this row waits until this
            // issuance commits, and then revokes the access token recorded
            // below as well; a revocation that committed first is seen here.
            let revoked: Option<bool> =
                sqlx::query_scalar("SELECT revoked FROM grants WHERE id = $1 FOR SHARE")
                    .bind(&issue.grant_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if revoked != Some(false) {
                return Ok(false);
            }
        }
    }
    if let Some(from) = &issue.rotated_from {
        let rotated =
            sqlx::query("UPDATE refresh_tokens SET used = TRUE WHERE token_hash = $1 AND NOT used")
                .bind(&from[..])
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if rotated.rows_affected() != 1 {
            return Ok(false);
        }
    }
    if let Some(jkt) = &issue.bind_dpop_jkt {
        sqlx::query("UPDATE grants SET dpop_jkt = $2 WHERE id = $1 AND dpop_jkt IS NULL")
            .bind(&issue.grant_id)
            .bind(jkt)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    if let Some(t) = &issue.refresh_token {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, issued_at, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token_hash[..])
        .bind(&t.grant_id)
        .bind(&t.client_id)
        .bind(t.issued_at)
        .bind(t.expires_at)
        .bind(t.used)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    sqlx::query("INSERT INTO grant_access_tokens (jti, grant_id, expires_at) VALUES ($1, $2, $3)")
        .bind(&issue.access_token.jti)
        .bind(&issue.grant_id)
        .bind(issue.access_token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(true)
}

/// Revokes the grant, or records it revoked if it does not exist yet;
/// false if it was revoked already.
pub(crate) async fn revoke_grant(
    tx: &mut PgConnection,
    grant_id: &str,
    client_id: &str,
    user_id: &str,
    now: UnixTime,
) -> Result<bool> {
    let revoked = sqlx::query(
        "INSERT INTO grants (id, client_id, user_id, scope, resources, auth_time, created_at, expires_at, revoked) \
         VALUES ($1, $2, $3, '', '[]', $4, $4, $5, TRUE) \
         ON CONFLICT (id) DO UPDATE SET revoked = TRUE WHERE NOT grants.revoked",
    )
    .bind(grant_id)
    .bind(client_id)
    .bind(user_id)
    .bind(now)
    .bind(now.saturating_add(TOMBSTONE_LIFETIME))
    .execute(&mut *tx)
    .await
    .map_err(db_err)?
    .rows_affected()
        == 1;
    if revoked {
        revoke_tokens(tx, &[grant_id.to_owned()]).await?;
    }
    Ok(revoked)
}

/// Ends the tokens of grants just revoked (their rows locked by this
/// transaction): refresh tokens count as used, and access tokens are
/// revoked until they expire. Each statement reads what committed before
/// it, including tokens of an issuance the revocation waited for.
async fn revoke_tokens(tx: &mut PgConnection, grant_ids: &[String]) -> Result<()> {
    if grant_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE refresh_tokens SET used = TRUE WHERE grant_id = ANY($1) AND NOT used")
        .bind(grant_ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) \
         SELECT t.jti, g.client_id, t.expires_at FROM grant_access_tokens t JOIN grants g ON g.id = t.grant_id \
         WHERE t.grant_id = ANY($1) ON CONFLICT DO NOTHING",
    )
    .bind(grant_ids)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Revokes every grant of the user (to one client, or to all) and deletes
/// their codes not redeemed yet; returns how many grants and codes.
async fn revoke_user_grants(
    tx: &mut PgConnection,
    user_id: &str,
    client_id: Option<&str>,
) -> Result<u64> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE grants SET revoked = TRUE \
         WHERE user_id = $1 AND ($2::text IS NULL OR client_id = $2) AND NOT revoked RETURNING id",
    )
    .bind(user_id)
    .bind(client_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    revoke_tokens(tx, &ids).await?;
    // An unredeemed code would otherwise create a fresh grant afterwards.
    let codes = sqlx::query(
        "DELETE FROM authorization_codes \
         WHERE user_id = $1 AND ($2::text IS NULL OR client_id = $2) AND NOT used",
    )
    .bind(user_id)
    .bind(client_id)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(ids.len() as u64 + codes.rows_affected())
}

/// Withdraws the user's consent for the client and revokes what it granted;
/// whether there was anything to withdraw.
pub(crate) async fn revoke_consent(
    tx: &mut PgConnection,
    user_id: &str,
    client_id: &str,
) -> Result<bool> {
    let consents = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
    let revoked = revoke_user_grants(tx, user_id, Some(client_id)).await?;
    Ok(consents > 0 || revoked > 0)
}

/// Disables or enables the user; disabling ends their sessions and pending
/// sign-ins and revokes all their grants. Whether the flag changed.
pub(crate) async fn set_user_disabled(
    tx: &mut PgConnection,
    user_id: &str,
    disabled: bool,
) -> Result<bool> {
    let changed = sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1 AND disabled <> $2")
        .bind(user_id)
        .bind(disabled)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
        == 1;
    if changed && disabled {
        for sql in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM interactions WHERE user_id = $1",
        ] {
            sqlx::query(sql)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        revoke_user_grants(tx, user_id, None).await?;
    }
    Ok(changed)
}

/// Deletes what a client's users granted it, after the client itself.
pub(crate) async fn delete_client_data(tx: &mut PgConnection, client_id: &str) -> Result<()> {
    for sql in [
        // The access tokens stay revoked until they expire: a client id
        // can come back (a metadata document's URL), its old tokens must not.
        "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) \
         SELECT t.jti, g.client_id, t.expires_at FROM grant_access_tokens t JOIN grants g ON g.id = t.grant_id \
         WHERE g.client_id = $1 ON CONFLICT DO NOTHING",
        "DELETE FROM grant_access_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)",
        "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)",
        "DELETE FROM grants WHERE client_id = $1",
        "DELETE FROM authorization_codes WHERE client_id = $1",
        "DELETE FROM consents WHERE client_id = $1",
        "DELETE FROM interactions WHERE client_id = $1",
    ] {
        sqlx::query(sql)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Deletes the user-flow rows that expired before `now`; how many.
pub(crate) async fn purge_expired(tx: &mut PgConnection, now: UnixTime) -> Result<u64> {
    let mut purged = 0;
    // A grant's tokens go with it, whatever their own expiry.
    for sql in [
        "DELETE FROM grant_access_tokens WHERE expires_at < $1 \
         OR grant_id IN (SELECT id FROM grants WHERE expires_at < $1)",
        "DELETE FROM refresh_tokens WHERE expires_at < $1 \
         OR grant_id IN (SELECT id FROM grants WHERE expires_at < $1)",
        "DELETE FROM grants WHERE expires_at < $1",
        // Used codes are kept a day past expiry, so a late replay still
        // finds and revokes its grant (RFC 6749 §4.1.2).
        "DELETE FROM authorization_codes WHERE expires_at < $1 - 86400",
        "DELETE FROM interactions WHERE expires_at < $1",
        "DELETE FROM sessions WHERE expires_at < $1",
    ] {
        purged += sqlx::query(sql)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
    }
    Ok(purged)
}
