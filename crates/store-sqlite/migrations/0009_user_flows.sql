-- Version 9: user flows. End users, their browser sessions, pending
-- authorization requests (interactions), remembered consent, authorization
-- codes, grants, refresh tokens and the access-token ids issued per grant.
-- Bearer values (session cookies, codes, refresh tokens) are stored only as
-- keyed hashes; resources and requests as JSON text.
--
-- There are no foreign keys: the store removes dependent rows itself (a
-- client's deletion cascades explicitly), and a revoked grant may be
-- recorded for a code before, or without, its first redemption.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name          TEXT,
    email         TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash    BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE interactions (
    id           TEXT PRIMARY KEY,
    browser_hash BLOB NOT NULL,
    client_id    TEXT NOT NULL,
    request      TEXT NOT NULL,
    user_id      TEXT,
    auth_time    INTEGER,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX interactions_client ON interactions(client_id);
CREATE INDEX interactions_expiry ON interactions(expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    resources  TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents(client_id);

CREATE TABLE authorization_codes (
    code_hash      BLOB PRIMARY KEY,
    grant_id       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT,
    scope          TEXT NOT NULL,
    resources      TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    dpop_jkt       TEXT,
    expires_at     INTEGER NOT NULL,
    used           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX authorization_codes_user_client ON authorization_codes(user_id, client_id);
CREATE INDEX authorization_codes_client ON authorization_codes(client_id);
CREATE INDEX authorization_codes_expiry ON authorization_codes(expires_at);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    scope      TEXT NOT NULL,
    resources  TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    dpop_jkt   TEXT
);
CREATE INDEX grants_user_client ON grants(user_id, client_id);
CREATE INDEX grants_client ON grants(client_id);
CREATE INDEX grants_expiry ON grants(expires_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens(expires_at);

CREATE TABLE grant_access_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX grant_access_tokens_grant ON grant_access_tokens(grant_id);
CREATE INDEX grant_access_tokens_expiry ON grant_access_tokens(expires_at);
