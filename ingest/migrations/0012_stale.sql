-- Silence after which a tag is stale (owner: ledger sync; 0 = not watched), and the STALE
-- condition the rule engine raises from its clock tick.
ALTER TABLE tags ADD COLUMN stale_after_s double precision NOT NULL DEFAULT 0;

ALTER TABLE alarms DROP CONSTRAINT alarms_condition_check;
ALTER TABLE alarms ADD CONSTRAINT alarms_condition_check
    CHECK (condition IN ('HIGH', 'LOW', 'FAULT', 'ROC', 'FROZEN', 'PREDICT', 'STALE'));
