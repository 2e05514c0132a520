-- Governance, version 2: the policy that admitted each client, its status
-- and expiry; initial access tokens bound to a profile with a use limit.
ALTER TABLE clients ADD COLUMN profile TEXT NOT NULL DEFAULT 'default';
ALTER TABLE clients ADD COLUMN policy_version TEXT NOT NULL DEFAULT 'builtin';
ALTER TABLE clients ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE clients ADD COLUMN expires_at BIGINT;

ALTER TABLE initial_access_tokens ADD COLUMN profile TEXT NOT NULL DEFAULT 'default';
ALTER TABLE initial_access_tokens ADD COLUMN max_uses BIGINT;
ALTER TABLE initial_access_tokens ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;
