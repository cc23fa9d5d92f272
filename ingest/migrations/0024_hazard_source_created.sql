-- When a hazard source entered the ledger (owner: ledger sync): it owes daily commitments from
-- then on, not for the days before it was registered. Sources already registered take the
-- earliest trace they left: their last update, their first commitment or their first alarm.
ALTER TABLE hazard_sources ADD COLUMN created_at timestamptz;
UPDATE hazard_sources hs SET created_at = least(
    hs.updated_at,
    (SELECT min(filed_at) FROM safety_commitments c WHERE c.hazard_source_id = hs.id),
    (SELECT min(raised_at) FROM alarms a WHERE a.hazard_source_id = hs.id)
);
ALTER TABLE hazard_sources ALTER COLUMN created_at SET DEFAULT now(), ALTER COLUMN created_at SET NOT NULL;
