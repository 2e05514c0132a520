//! Versioned schema migrations, tracked in `PRAGMA user_version`. Each
//! migration runs in its own transaction together with the version bump, so
//! a crash never leaves a half-applied schema.

use charter_store::{Error, Result};
use rusqlite::Connection;

/// Migrations in order; the schema version is the index of the last applied plus one.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_governance.sql"),
    include_str!("../migrations/0003_audit.sql"),
    include_str!("../migrations/0004_lifecycle.sql"),
    include_str!("../migrations/0005_iat_source.sql"),
    include_str!("../migrations/0006_admin_roles.sql"),
    include_str!("../migrations/0007_approval_until.sql"),
    include_str!("../migrations/0008_point_of_use.sql"),
    include_str!("../migrations/0009_user_flows.sql"),
    include_str!("../migrations/0010_metadata_documents.sql"),
];

pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    let fail = |e: rusqlite::Error| Error::Migration(e.to_string());
    // WAL is a property of the database file; set it once, from the writer.
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(fail)?;
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(fail)?
        .max(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(Error::Migration(format!(
            "database schema version {current} is newer than this binary knows ({}); upgrade Charter",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction().map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}
