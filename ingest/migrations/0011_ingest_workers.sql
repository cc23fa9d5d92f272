-- The topic filters each ingest worker's persistent MQTT session holds (owner: ingest). A worker
-- restarted with another --enterprises list unsubscribes what it no longer owns, so its session
-- (one per worker id) never keeps collecting another worker's messages.
CREATE TABLE ingest_workers (
    worker_id     text PRIMARY KEY,
    topics        text[] NOT NULL,
    subscribed_at timestamptz NOT NULL DEFAULT now()
);
