-- Charter schema, version 1: organizations, credentials, clients, keys.
-- Credentials are stored only as keyed hashes (32-byte HMAC-SHA-256).
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE admin_tokens (
    token_hash BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE initial_access_tokens (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    token_hash      BLOB NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE clients (
    client_id               TEXT PRIMARY KEY,
    organization_id         TEXT NOT NULL REFERENCES organizations(id),
    initial_access_token_id TEXT,
    metadata                TEXT NOT NULL,
    secret_hash             BLOB,
    secret_expires_at       INTEGER,
    registration_token_hash BLOB NOT NULL,
    issued_at               INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
CREATE INDEX clients_organization ON clients(organization_id);

-- initial_for_alg is set on the first key of each algorithm so that replicas
-- racing at first start insert one key set; rotated keys leave it NULL.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    initial_for_alg TEXT UNIQUE,
    private_pkcs8   BLOB NOT NULL,
    created_at      INTEGER NOT NULL
);
