-- Version 8: point of use. Signing keys activate on a schedule; clients
-- record their last use and a rotated-out secret with its overlap; revoked
-- access tokens and used client-assertion ids are kept until they expire.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at;

ALTER TABLE clients ADD COLUMN last_used_at BIGINT;
ALTER TABLE clients ADD COLUMN previous_secret_hash BYTEA;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at BIGINT;
CREATE INDEX clients_expiry ON clients(status, expires_at);

CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens(expires_at);

CREATE TABLE used_assertion_ids (
    client_id  TEXT NOT NULL,
    jti_hash   BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX used_assertion_ids_expiry ON used_assertion_ids(expires_at);
