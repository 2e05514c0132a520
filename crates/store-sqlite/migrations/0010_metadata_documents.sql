-- Version 10: client ID metadata documents. A client whose client_id is the
-- URL of its metadata document keeps when the stored copy stops being fresh
-- and a digest of the validated metadata, to tell a changed document.
ALTER TABLE clients ADD COLUMN document_fresh_until INTEGER;
ALTER TABLE clients ADD COLUMN document_digest BLOB;
