-- Version 5: an initial access token may be limited to a source network.
ALTER TABLE initial_access_tokens ADD COLUMN allowed_cidr TEXT;
