-- Online rates count each tag from when it could be read (owner: ledger sync, ingest): from when it
-- entered the ledger, and from its first reading, or — while it has none — from its gateway's
-- first contact. A gateway never heard from expects nothing yet. Existing rows take the earliest
-- trace they left.
ALTER TABLE tags ADD COLUMN created_at timestamptz, ADD COLUMN first_read_at timestamptz;
UPDATE tags t SET first_read_at = (SELECT min(m.bucket) FROM readings_1m m WHERE m.tag_id = t.id);
UPDATE tags SET created_at = least(updated_at, first_read_at);
ALTER TABLE tags ALTER COLUMN created_at SET DEFAULT now(), ALTER COLUMN created_at SET NOT NULL;

ALTER TABLE gateways ADD COLUMN first_seen_at timestamptz;
UPDATE gateways g SET first_seen_at = least(
    (SELECT min(t.first_read_at) FROM tags t WHERE t.gateway_id = g.id), g.last_seen_at, g.health_at, g.status_at
);
