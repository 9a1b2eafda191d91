-- ltx-serve PostgreSQL schema, version 2: assets and LoRA styles.
CREATE TABLE assets (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts(id),
    -- where the bytes are in storage; also the last part of the asset's public URL
    file_key    text NOT NULL UNIQUE,
    mime_type   text NOT NULL,
    size_bytes  bigint NOT NULL,
    width       integer,
    height      integer,
    description text,
    uploaded_at bigint NOT NULL
);
CREATE INDEX assets_account_uploaded ON assets(account_id, uploaded_at);

ALTER TABLE styles ADD COLUMN prompt text NOT NULL DEFAULT '';
-- JSON array of preview URLs
ALTER TABLE styles ADD COLUMN urls text NOT NULL DEFAULT '[]';
ALTER TABLE styles ADD COLUMN cover_url text;
ALTER TABLE styles ADD COLUMN file_key text NOT NULL DEFAULT '';
ALTER TABLE styles ADD COLUMN size_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE styles ADD COLUMN lora_rank integer NOT NULL DEFAULT 0;
CREATE INDEX styles_account_created ON styles(account_id, created_at);
CREATE INDEX styles_public_created ON styles(public, created_at);
