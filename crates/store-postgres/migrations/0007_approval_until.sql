-- Version 7: when a client's approval lapses and it needs re-approval.
ALTER TABLE clients ADD COLUMN approved_until BIGINT;
