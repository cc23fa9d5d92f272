-- Chatter protection of a tag's conditions other than its limits (owner: ledger sync; the rule
-- engine reads them): on-/off-delays in seconds of FAULT, ROC, FROZEN, PREDICT and STALE, how far
-- back inside NAMUR NE 43's band a value must be for FAULT to reset, and ROC's own deadband (both
-- in engineering units). Effective values: the ledger's, or the defaults for the tag's kind; 0 and
-- NULL (ROC's deadband: the tag's) until the next sync.
ALTER TABLE tags
    ADD COLUMN fault_on_delay_s    double precision NOT NULL DEFAULT 0,
    ADD COLUMN fault_off_delay_s   double precision NOT NULL DEFAULT 0,
    ADD COLUMN fault_margin        double precision NOT NULL DEFAULT 0,
    ADD COLUMN roc_on_delay_s      double precision NOT NULL DEFAULT 0,
    ADD COLUMN roc_off_delay_s     double precision NOT NULL DEFAULT 0,
    ADD COLUMN roc_deadband        double precision,
    ADD COLUMN frozen_on_delay_s   double precision NOT NULL DEFAULT 0,
    ADD COLUMN frozen_off_delay_s  double precision NOT NULL DEFAULT 0,
    ADD COLUMN predict_on_delay_s  double precision NOT NULL DEFAULT 0,
    ADD COLUMN predict_off_delay_s double precision NOT NULL DEFAULT 0,
    ADD COLUMN stale_on_delay_s    double precision NOT NULL DEFAULT 0,
    ADD COLUMN stale_off_delay_s   double precision NOT NULL DEFAULT 0;
