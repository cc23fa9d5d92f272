-- Alarm history (owner: dashboard reads, alarms writes): keyset pages newest first over millions
-- of alarms, by region (through enterprises), by enterprise, by hazard source, by tag.
CREATE INDEX alarms_raised ON alarms (raised_at DESC, id DESC);
CREATE INDEX alarms_hazard_source_time ON alarms (hazard_source_id, raised_at DESC, id DESC);
CREATE INDEX alarms_tag_time ON alarms (tag_id, raised_at DESC, id DESC) WHERE tag_id IS NOT NULL;
DROP INDEX IF EXISTS alarms_enterprise_time;
CREATE INDEX alarms_enterprise_time ON alarms (enterprise_id, raised_at DESC, id DESC);
