//! The user flows in SQLite: end users, sessions, interactions, consent,
//! authorization codes, grants and refresh tokens.
//!
//! Reads decode rows for the pooled read connections; writes are the
//! statements the writer thread runs inside its batch transaction (so each
//! function here assumes it runs within the writer's savepoint and never
//! commits itself). Revocation lives here too, because revoking a grant,
//! a consent or a user touches the same tables.

use charter_store::{AuthorizationCode, Consent, Grant, Interaction, Issue, RefreshToken};
use charter_store::{Session, TokenHash, UnixTime, User};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::rows::Hash;

/// How long a revoked grant recorded for a code that was never redeemed is
/// kept: far longer than any code lives, so the code's late first
/// redemption still finds it.
const TOMBSTONE_LIFETIME: i64 = 24 * 60 * 60;

fn json_failure(index: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))
}

/// A `resources` column: a JSON array of strings.
fn resources(r: &Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = r.get(index)?;
    serde_json::from_str(&text).map_err(|e| json_failure(index, e))
}

/// The JSON text stored for a list of resources.
pub(crate) fn resources_json(resources: &[String]) -> String {
    serde_json::Value::from(resources.to_vec()).to_string()
}

pub(crate) const USER_COLUMNS: &str =
    "id, username, password_hash, name, email, disabled, created_at";

pub(crate) fn user(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        name: r.get(3)?,
        email: r.get(4)?,
        disabled: r.get(5)?,
        created_at: r.get(6)?,
    })
}

pub(crate) fn session(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id_hash: r.get::<_, Hash>(0)?.0,
        user_id: r.get(1)?,
        auth_time: r.get(2)?,
        expires_at: r.get(3)?,
    })
}

pub(crate) const INTERACTION_COLUMNS: &str =
    "id, browser_hash, client_id, request, user_id, auth_time, created_at, expires_at";

pub(crate) fn interaction(r: &Row<'_>) -> rusqlite::Result<Interaction> {
    let request: String = r.get(3)?;
    Ok(Interaction {
        id: r.get(0)?,
        browser_hash: r.get::<_, Hash>(1)?.0,
        client_id: r.get(2)?,
        request: serde_json::from_str(&request).map_err(|e| json_failure(3, e))?,
        user_id: r.get(4)?,
        auth_time: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
    })
}

pub(crate) const CONSENT_COLUMNS: &str = "user_id, client_id, scope, resources, granted_at";

pub(crate) fn consent(r: &Row<'_>) -> rusqlite::Result<Consent> {
    Ok(Consent {
        user_id: r.get(0)?,
        client_id: r.get(1)?,
        scope: r.get(2)?,
        resources: resources(r, 3)?,
        granted_at: r.get(4)?,
    })
}

pub(crate) const CODE_COLUMNS: &str =
    "code_hash, grant_id, client_id, user_id, redirect_uri, scope, \
     resources, code_challenge, nonce, auth_time, dpop_jkt, expires_at, used";

pub(crate) fn code(r: &Row<'_>) -> rusqlite::Result<AuthorizationCode> {
    Ok(AuthorizationCode {
        code_hash: r.get::<_, Hash>(0)?.0,
        grant_id: r.get(1)?,
        client_id: r.get(2)?,
        user_id: r.get(3)?,
        redirect_uri: r.get(4)?,
        scope: r.get(5)?,
        resources: resources(r, 6)?,
        code_challenge: r.get(7)?,
        nonce: r.get(8)?,
        auth_time: r.get(9)?,
        dpop_jkt: r.get(10)?,
        expires_at: r.get(11)?,
        used: r.get(12)?,
    })
}

/// A refresh token (columns 0 to 5) joined with its grant (from column 6).
pub(crate) const REFRESH_TOKEN_COLUMNS: &str =
    "t.token_hash, t.grant_id, t.client_id, t.issued_at, \
     t.expires_at, t.used, g.id, g.client_id, g.user_id, g.scope, g.resources, g.auth_time, \
     g.created_at, g.expires_at, g.revoked, g.dpop_jkt";

pub(crate) fn refresh_token(r: &Row<'_>) -> rusqlite::Result<(RefreshToken, Grant)> {
    let token = RefreshToken {
        token_hash: r.get::<_, Hash>(0)?.0,
        grant_id: r.get(1)?,
        client_id: r.get(2)?,
        issued_at: r.get(3)?,
        expires_at: r.get(4)?,
        used: r.get(5)?,
    };
    let grant = Grant {
        id: r.get(6)?,
        client_id: r.get(7)?,
        user_id: r.get(8)?,
        scope: r.get(9)?,
        resources: resources(r, 10)?,
        auth_time: r.get(11)?,
        created_at: r.get(12)?,
        expires_at: r.get(13)?,
        revoked: r.get(14)?,
        dpop_jkt: r.get(15)?,
    };
    Ok((token, grant))
}

// Writes, run by the writer thread inside its transaction.

/// Stores the user unless the username is taken; an id collision is an
/// error (ids are generated, so it is a bug, not a user's choice).
pub(crate) fn insert_user(conn: &Connection, u: &User) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO users (id, username, password_hash, name, email, disabled, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (username) DO NOTHING",
    )?
    .execute(params![
        u.id,
        u.username,
        u.password_hash,
        u.name,
        u.email,
        u.disabled,
        u.created_at
    ])
    .map(|n| n as u64)
}

pub(crate) fn insert_session(conn: &Connection, s: &Session) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO sessions (id_hash, user_id, auth_time, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        &s.id_hash[..],
        s.user_id,
        s.auth_time,
        s.expires_at
    ])
    .map(|n| n as u64)
}

pub(crate) fn delete_session(conn: &Connection, id_hash: &TokenHash) -> rusqlite::Result<u64> {
    conn.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
        .execute([&id_hash[..]])
        .map(|n| n as u64)
}

pub(crate) fn insert_interaction(conn: &Connection, i: &Interaction) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO interactions (id, browser_hash, client_id, request, user_id, auth_time, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        i.id,
        &i.browser_hash[..],
        i.client_id,
        i.request.to_string(),
        i.user_id,
        i.auth_time,
        i.created_at,
        i.expires_at
    ])
    .map(|n| n as u64)
}

pub(crate) fn set_interaction_user(
    conn: &Connection,
    id: &str,
    user_id: &str,
    auth_time: UnixTime,
) -> rusqlite::Result<u64> {
    conn.prepare_cached("UPDATE interactions SET user_id = ?2, auth_time = ?3 WHERE id = ?1")?
        .execute(params![id, user_id, auth_time])
        .map(|n| n as u64)
}

pub(crate) fn finish_interaction(conn: &Connection, id: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("DELETE FROM interactions WHERE id = ?1")?
        .execute([id])
        .map(|n| n as u64)
}

/// Ends the interaction and stores its code and consent; 0 (nothing
/// stored) if the interaction was already finished.
pub(crate) fn complete_interaction(
    conn: &Connection,
    id: &str,
    code: &AuthorizationCode,
    consent: Option<&Consent>,
) -> rusqlite::Result<u64> {
    if finish_interaction(conn, id)? != 1 {
        return Ok(0);
    }
    conn.prepare_cached(
        "INSERT INTO authorization_codes (code_hash, grant_id, client_id, user_id, redirect_uri, scope, \
         resources, code_challenge, nonce, auth_time, dpop_jkt, expires_at, used) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        &code.code_hash[..],
        code.grant_id,
        code.client_id,
        code.user_id,
        code.redirect_uri,
        code.scope,
        resources_json(&code.resources),
        code.code_challenge,
        code.nonce,
        code.auth_time,
        code.dpop_jkt,
        code.expires_at,
        code.used
    ])?;
    if let Some(c) = consent {
        // One writer thread: the read and the upsert cannot interleave
        // with another consent.
        let earlier = conn
            .prepare_cached(
                "SELECT user_id, client_id, scope, resources, granted_at FROM consents \
                 WHERE user_id = ?1 AND client_id = ?2",
            )?
            .query_row(params![c.user_id, c.client_id], |r| {
                Ok(Consent {
                    user_id: r.get(0)?,
                    client_id: r.get(1)?,
                    scope: r.get(2)?,
                    resources: resources(r, 3)?,
                    granted_at: r.get(4)?,
                })
            })
            .optional()?;
        let merged = earlier.map(|e| c.merged_into(&e));
        let c = merged.as_ref().unwrap_or(c);
        conn.prepare_cached(
            "INSERT INTO consents (user_id, client_id, scope, resources, granted_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
             resources = excluded.resources, granted_at = excluded.granted_at",
        )?
        .execute(params![
            c.user_id,
            c.client_id,
            c.scope,
            resources_json(&c.resources),
            c.granted_at
        ])?;
    }
    Ok(1)
}

/// Marks the code used; 1 if this call did so (it was unused).
pub(crate) fn take_code(conn: &Connection, code_hash: &TokenHash) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "UPDATE authorization_codes SET used = 1 WHERE code_hash = ?1 AND used = 0",
    )?
    .execute([&code_hash[..]])
    .map(|n| n as u64)
}

/// Records one issuance (see [`Issue`]); 0 when refused. A refusal may
/// follow a write (the new grant) that the writer then rolls back with the
/// operation's savepoint.
pub(crate) fn issue(conn: &Connection, issue: &Issue) -> rusqlite::Result<u64> {
    match &issue.grant {
        Some(g) => {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO grants (id, client_id, user_id, scope, resources, auth_time, created_at, \
                     expires_at, revoked, dpop_jkt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    g.id,
                    g.client_id,
                    g.user_id,
                    g.scope,
                    resources_json(&g.resources),
                    g.auth_time,
                    g.created_at,
                    g.expires_at,
                    g.revoked,
                    g.dpop_jkt
                ])?;
            // The grant exists already: a replayed code revoked it first.
            if inserted != 1 {
                return Ok(0);
            }
        }
        None => {
            let revoked: Option<bool> = conn
                .prepare_cached("SELECT revoked FROM grants WHERE id = ?1")?
                .query_row([&issue.grant_id], |r| r.get(0))
                .optional()?;
            if revoked != Some(false) {
                return Ok(0);
            }
        }
    }
    if let Some(from) = &issue.rotated_from {
        let rotated = conn
            .prepare_cached(
                "UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?1 AND used = 0",
            )?
            .execute([&from[..]])?;
        if rotated != 1 {
            return Ok(0);
        }
    }
    if let Some(jkt) = &issue.bind_dpop_jkt {
        conn.prepare_cached("UPDATE grants SET dpop_jkt = ?2 WHERE id = ?1 AND dpop_jkt IS NULL")?
            .execute(params![issue.grant_id, jkt])?;
    }
    if let Some(t) = &issue.refresh_token {
        conn.prepare_cached(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, issued_at, expires_at, used) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            &t.token_hash[..],
            t.grant_id,
            t.client_id,
            t.issued_at,
            t.expires_at,
            t.used
        ])?;
    }
    conn.prepare_cached(
        "INSERT INTO grant_access_tokens (jti, grant_id, expires_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        issue.access_token.jti,
        issue.grant_id,
        issue.access_token.expires_at
    ])?;
    Ok(1)
}

/// Revokes the grant, or records it revoked if it does not exist yet;
/// false if it was revoked already.
pub(crate) fn revoke_grant(
    conn: &Connection,
    grant_id: &str,
    client_id: &str,
    user_id: &str,
    now: UnixTime,
) -> rusqlite::Result<bool> {
    let revoked = conn
        .prepare_cached(
            "INSERT INTO grants (id, client_id, user_id, scope, resources, auth_time, created_at, expires_at, revoked) \
             VALUES (?1, ?2, ?3, '', '[]', ?4, ?4, ?5, 1) \
             ON CONFLICT (id) DO UPDATE SET revoked = 1 WHERE revoked = 0",
        )?
        .execute(params![
            grant_id,
            client_id,
            user_id,
            now,
            now.saturating_add(TOMBSTONE_LIFETIME)
        ])?;
    if revoked == 1 {
        revoke_tokens(conn, grant_id)?;
    }
    Ok(revoked == 1)
}

/// Ends the tokens of a grant just revoked: its refresh tokens count as
/// used, and its access tokens are revoked until they expire.
fn revoke_tokens(conn: &Connection, grant_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE refresh_tokens SET used = 1 WHERE grant_id = ?1 AND used = 0")?
        .execute([grant_id])?;
    conn.prepare_cached(
        "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) \
         SELECT t.jti, g.client_id, t.expires_at FROM grant_access_tokens t JOIN grants g ON g.id = t.grant_id \
         WHERE t.grant_id = ?1 ON CONFLICT DO NOTHING",
    )?
    .execute([grant_id])?;
    Ok(())
}

/// Revokes every grant of the user (to one client, or to all) and deletes
/// their codes not redeemed yet; returns how many grants and codes.
fn revoke_user_grants(
    conn: &Connection,
    user_id: &str,
    client_id: Option<&str>,
) -> rusqlite::Result<u64> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM grants WHERE user_id = ?1 AND (?2 IS NULL OR client_id = ?2) AND revoked = 0",
        )?
        .query_map(params![user_id, client_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &ids {
        conn.prepare_cached("UPDATE grants SET revoked = 1 WHERE id = ?1")?
            .execute([id])?;
        revoke_tokens(conn, id)?;
    }
    // An unredeemed code would otherwise create a fresh grant afterwards.
    let codes = conn
        .prepare_cached(
            "DELETE FROM authorization_codes WHERE user_id = ?1 AND (?2 IS NULL OR client_id = ?2) AND used = 0",
        )?
        .execute(params![user_id, client_id])?;
    Ok((ids.len() + codes) as u64)
}

/// Withdraws the user's consent for the client and revokes what it granted;
/// whether there was anything to withdraw.
pub(crate) fn revoke_consent(
    conn: &Connection,
    user_id: &str,
    client_id: &str,
) -> rusqlite::Result<bool> {
    let consents = conn
        .prepare_cached("DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2")?
        .execute([user_id, client_id])?;
    let revoked = revoke_user_grants(conn, user_id, Some(client_id))?;
    Ok(consents > 0 || revoked > 0)
}

/// Disables or enables the user; disabling ends their sessions and pending
/// sign-ins and revokes all their grants. Whether the flag changed.
pub(crate) fn set_user_disabled(
    conn: &Connection,
    user_id: &str,
    disabled: bool,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached("UPDATE users SET disabled = ?2 WHERE id = ?1 AND disabled <> ?2")?
        .execute(params![user_id, disabled])?;
    if changed == 1 && disabled {
        conn.prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
            .execute([user_id])?;
        conn.prepare_cached("DELETE FROM interactions WHERE user_id = ?1")?
            .execute([user_id])?;
        revoke_user_grants(conn, user_id, None)?;
    }
    Ok(changed == 1)
}

/// Deletes what a client's users granted it, after the client itself.
pub(crate) fn delete_client_data(conn: &Connection, client_id: &str) -> rusqlite::Result<()> {
    for sql in [
        // The access tokens stay revoked until they expire: a client id
        // can come back (a metadata document's URL), its old tokens must not.
        "INSERT INTO revoked_access_tokens (jti, client_id, expires_at) \
         SELECT t.jti, g.client_id, t.expires_at FROM grant_access_tokens t JOIN grants g ON g.id = t.grant_id \
         WHERE g.client_id = ?1 ON CONFLICT DO NOTHING",
        "DELETE FROM grant_access_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?1)",
        "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?1)",
        "DELETE FROM grants WHERE client_id = ?1",
        "DELETE FROM authorization_codes WHERE client_id = ?1",
        "DELETE FROM consents WHERE client_id = ?1",
        "DELETE FROM interactions WHERE client_id = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([client_id])?;
    }
    Ok(())
}

/// Deletes the user-flow rows that expired before `now`; how many.
pub(crate) fn purge_expired(conn: &Connection, now: UnixTime) -> rusqlite::Result<u64> {
    let mut purged = 0;
    // A grant's tokens go with it, whatever their own expiry.
    for sql in [
        "DELETE FROM grant_access_tokens WHERE expires_at < ?1 \
         OR grant_id IN (SELECT id FROM grants WHERE expires_at < ?1)",
        "DELETE FROM refresh_tokens WHERE expires_at < ?1 \
         OR grant_id IN (SELECT id FROM grants WHERE expires_at < ?1)",
        "DELETE FROM grants WHERE expires_at < ?1",
        // Used codes are kept a day past expiry, so a late replay still
        // finds and revokes its grant (RFC 6749 §4.1.2).
        "DELETE FROM authorization_codes WHERE expires_at < ?1 - 86400",
        "DELETE FROM interactions WHERE expires_at < ?1",
        "DELETE FROM sessions WHERE expires_at < ?1",
    ] {
        purged += conn.prepare_cached(sql)?.execute([now])? as u64;
    }
    Ok(purged)
}
