-- ltx-serve SQLite schema, version 3: assets and LoRA styles.
CREATE TABLE assets (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    -- where the bytes are in storage; also the last part of the asset's public URL
    file_key    TEXT NOT NULL UNIQUE,
    mime_type   TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    width       INTEGER,
    height      INTEGER,
    description TEXT,
    uploaded_at INTEGER NOT NULL
);
CREATE INDEX assets_account_uploaded ON assets(account_id, uploaded_at);

ALTER TABLE styles ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
-- JSON array of preview URLs
ALTER TABLE styles ADD COLUMN urls TEXT NOT NULL DEFAULT '[]';
ALTER TABLE styles ADD COLUMN cover_url TEXT;
ALTER TABLE styles ADD COLUMN file_key TEXT NOT NULL DEFAULT '';
ALTER TABLE styles ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE styles ADD COLUMN lora_rank INTEGER NOT NULL DEFAULT 0;
CREATE INDEX styles_account_created ON styles(account_id, created_at);
CREATE INDEX styles_public_created ON styles(public, created_at);
