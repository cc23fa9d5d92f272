-- A gap in a gateway's sequence numbers that does not close by itself (the broker acknowledged
-- the batches and then dropped them, e.g. past its queue for ingest) is asked for again on the
-- gateway's resend topic (owner: ingest): when it was last asked for and how often.
ALTER TABLE gateway_seq_gaps
    ADD COLUMN resend_requested_at timestamptz,
    ADD COLUMN resend_requests integer NOT NULL DEFAULT 0;
