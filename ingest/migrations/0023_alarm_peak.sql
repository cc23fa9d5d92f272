-- The highest level an alarm reached (owner: alarms): an alarm that climbed to HH and fell back
-- keeps HH, with the value and limit of that level, in its record, its history and its export.
ALTER TABLE alarms ADD COLUMN peak_level smallint NOT NULL DEFAULT 0;
UPDATE alarms SET peak_level = level;
