-- Window conditions of a tag (owner: ledger sync; the rule engine reads them): rate of change,
-- frozen value and predictive warning. NULL or 0 leaves a condition off for the tag.
ALTER TABLE tags
    ADD COLUMN roc_limit          double precision,
    ADD COLUMN roc_period_s       double precision NOT NULL DEFAULT 0,
    ADD COLUMN frozen_window_s    double precision NOT NULL DEFAULT 0,
    ADD COLUMN frozen_eps         double precision NOT NULL DEFAULT 0,
    ADD COLUMN predict_window_s   double precision NOT NULL DEFAULT 0,
    ADD COLUMN predict_response_s double precision NOT NULL DEFAULT 0;

ALTER TABLE alarms DROP CONSTRAINT alarms_condition_check;
ALTER TABLE alarms ADD CONSTRAINT alarms_condition_check
    CHECK (condition IN ('HIGH', 'LOW', 'FAULT', 'ROC', 'FROZEN', 'PREDICT'));
