-- Ranges of batch sequence numbers a gateway numbered and the platform has not received yet
-- (owner: ingest). Live batches go before an outage's backlog, so a gap opens when a live batch
-- jumps ahead and closes as the replayed batches arrive; gateways.seq_gaps is the sum of what
-- is still open: batches lost for good, or still on their way.
CREATE TABLE gateway_seq_gaps (
    gateway_id integer NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL CHECK (last_seq >= first_seq),
    opened_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, first_seq)
);
