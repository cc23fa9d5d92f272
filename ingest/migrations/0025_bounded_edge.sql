-- Nothing from the network opens unbounded work (owner: ingest).
-- A gateway's sequence numbers: what was given up (gaps nobody can fill any more) and how often a
-- batch numbered far from the last one started counting again (a new buffer, or a forgery).
ALTER TABLE gateways
    ADD COLUMN seq_lost bigint NOT NULL DEFAULT 0,
    ADD COLUMN seq_epochs integer NOT NULL DEFAULT 0;

-- A dead letter keeps a bounded prefix of its payload, with the whole payload's size and hash,
-- and the kind of its reason (for counts by reason).
ALTER TABLE dead_letters
    ADD COLUMN payload_size integer,
    ADD COLUMN payload_sha256 bytea,
    ADD COLUMN kind text NOT NULL DEFAULT 'invalid';
UPDATE dead_letters SET payload_size = octet_length(payload), payload_sha256 = sha256(payload);
ALTER TABLE dead_letters
    ALTER COLUMN payload_size SET NOT NULL,
    ADD CONSTRAINT dead_letters_prefix CHECK (octet_length(payload) <= payload_size);
CREATE INDEX dead_letters_kind_time ON dead_letters (kind, received_at DESC);
