//! The storage contract suite against a fresh SQLite database file.

#[tokio::test]
async fn sqlite_passes_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("charter.db").display());
    let store = charter_store_sqlite::SqliteStore::open(&url).await.unwrap();
    charter_store::contract::run(&store).await;
    charter_store::Store::close(&store).await;
    // Reopening applies no migration twice and finds the data.
    let store = charter_store_sqlite::SqliteStore::open(&url).await.unwrap();
    assert!(charter_store::Store::client(&store, "bulk-1")
        .await
        .unwrap()
        .is_some());
}
