-- The latest value of every tag, for boards (owner: ingest).
CREATE TABLE readings_latest (
    tag_id      integer PRIMARY KEY REFERENCES tags (id),
    ts          timestamptz NOT NULL,
    value       double precision,
    quality     smallint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Everything ingest could not accept, with the reason (owner: ingest).
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    payload     bytea NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX dead_letters_time ON dead_letters (received_at DESC);
