//! Decoding rows into records. Hash columns must be exactly 32 bytes;
//! anything else is reported as a conversion failure, never truncated.

use charter_store::{
    AuditRecord, ClientRecord, ClientStatus, DocumentState, InitialAccessToken, Organization,
    TokenHash,
};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Type, ValueRef};
use rusqlite::Row;

/// A 32-byte hash column.
pub(crate) struct Hash(pub(crate) TokenHash);

impl FromSql for Hash {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let bytes = value.as_blob()?;
        bytes
            .try_into()
            .map(Hash)
            .map_err(|_| FromSqlError::InvalidBlobSize {
                expected_size: 32,
                blob_size: bytes.len(),
            })
    }
}

pub(crate) fn initial_access_token(r: &Row<'_>) -> rusqlite::Result<InitialAccessToken> {
    Ok(InitialAccessToken {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        token_hash: r.get::<_, Hash>(2)?.0,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked: r.get(5)?,
        profile: r.get(6)?,
        max_uses: r.get(7)?,
        uses: r.get(8)?,
        allowed_cidr: r.get(9)?,
    })
}

/// How many columns [`client`] decodes: a query's own columns follow.
pub(crate) const CLIENT_COLUMN_COUNT: usize = 20;

/// The columns [`client`] decodes, in order.
pub(crate) const CLIENT_COLUMNS: &str = "client_id, organization_id, initial_access_token_id, metadata, secret_hash, \
     secret_expires_at, registration_token_hash, issued_at, updated_at, profile, policy_version, \
     status, expires_at, approval, approved_until, last_used_at, previous_secret_hash, previous_secret_expires_at, \
     document_fresh_until, document_digest";

pub(crate) fn status(r: &Row<'_>, index: usize) -> rusqlite::Result<ClientStatus> {
    let text: String = r.get(index)?;
    ClientStatus::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            format!("unknown client status {text:?}").into(),
        )
    })
}

pub(crate) fn client(r: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    let metadata: String = r.get(3)?;
    Ok(ClientRecord {
        client_id: r.get(0)?,
        organization_id: r.get(1)?,
        initial_access_token_id: r.get(2)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, Box::new(e)))?,
        secret_hash: r.get::<_, Option<Hash>>(4)?.map(|h| h.0),
        secret_expires_at: r.get(5)?,
        registration_token_hash: r.get::<_, Hash>(6)?.0,
        issued_at: r.get(7)?,
        updated_at: r.get(8)?,
        profile: r.get(9)?,
        policy_version: r.get(10)?,
        status: status(r, 11)?,
        expires_at: r.get(12)?,
        approval: r.get(13)?,
        approved_until: r.get(14)?,
        last_used_at: r.get(15)?,
        previous_secret_hash: r.get::<_, Option<Hash>>(16)?.map(|h| h.0),
        previous_secret_expires_at: r.get(17)?,
        document: match (r.get::<_, Option<i64>>(18)?, r.get::<_, Option<Hash>>(19)?) {
            (Some(fresh_until), Some(digest)) => Some(DocumentState {
                fresh_until,
                digest: digest.0,
            }),
            _ => None,
        },
    })
}

pub(crate) fn audit(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        at: r.get(1)?,
        event_json: r.get(2)?,
        prev_hash: r.get::<_, Hash>(3)?.0,
        hash: r.get::<_, Hash>(4)?.0,
    })
}

pub(crate) fn organization(r: &Row<'_>) -> rusqlite::Result<Organization> {
    Ok(Organization {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
        status: r.get(3)?,
    })
}
