-- On-delay and off-delay of a tag's limit conditions, in seconds (owner: ledger sync; the rule
-- engine reads them). Effective values: the ledger's, or the defaults for the tag's kind.
ALTER TABLE tags
    ADD COLUMN on_delay_s  double precision NOT NULL DEFAULT 0,
    ADD COLUMN off_delay_s double precision NOT NULL DEFAULT 0;
