-- Lifecycle, version 4: organization status and client approval records.
ALTER TABLE organizations ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE clients ADD COLUMN approval TEXT;
