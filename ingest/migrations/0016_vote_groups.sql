-- Composite conditions (owner: ledger sync): the k-out-of-n voting groups of a hazard source's
-- tags, each an alarm subject of its own (VOTE), and each hazard source's warning threshold
-- (SOURCE: that many distinct tags with one of the warning conditions active).
CREATE TABLE vote_groups (
    id               serial PRIMARY KEY,
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    equipment_id     integer REFERENCES equipment (id),  -- the members' equipment, when they share one
    code             text NOT NULL,
    name             text NOT NULL DEFAULT '',
    condition        text NOT NULL CHECK (condition IN ('HIGH', 'LOW')),
    k                smallint NOT NULL,
    tag_ids          integer[] NOT NULL,
    in_service       boolean NOT NULL DEFAULT true,  -- false: removed from the devices file (alarms refer to it)
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (hazard_source_id, code),
    CHECK (cardinality(tag_ids) >= 2 AND k BETWEEN 1 AND cardinality(tag_ids))
);

ALTER TABLE hazard_sources
    ADD COLUMN warning_min_tags smallint NOT NULL DEFAULT 2 CHECK (warning_min_tags >= 0),  -- 0: off
    ADD COLUMN warning_conditions text[] NOT NULL DEFAULT '{HIGH,LOW,ROC,PREDICT}';

ALTER TABLE alarms DROP CONSTRAINT alarms_subject_kind_check;
ALTER TABLE alarms ADD CONSTRAINT alarms_subject_kind_check
    CHECK (subject_kind IN ('tag', 'camera', 'hazard_source', 'gateway', 'vote_group'));
