-- The full alarm lifecycle (owner: alarms).
--
-- Subjects: an alarm belongs to a tag, a camera, a hazard source (composite warnings) or a
-- gateway (offline); at most one open alarm per (subject, condition), enforced here.
-- States add SHELVED (operator, time-limited), SUPPRESSED (by design: maintenance or start-up
-- declared by the enterprise) and OUT_OF_SERVICE (tag out of service) to ISA-18.2's four.
-- The regulatory loop: feedback filed by the enterprise, reviewed by the regulator; an alarm
-- closes (closed_at) when it is back to NORMAL and its disposition allows it.
ALTER TABLE alarms ALTER COLUMN tag_id DROP NOT NULL;
ALTER TABLE alarms ALTER COLUMN hazard_source_id DROP NOT NULL;  -- a gateway serves several
ALTER TABLE alarms DROP CONSTRAINT alarms_condition_check;
ALTER TABLE alarms DROP CONSTRAINT alarms_state_check;
ALTER TABLE alarms
    ADD COLUMN subject_kind text NOT NULL DEFAULT 'tag'
        CHECK (subject_kind IN ('tag', 'camera', 'hazard_source', 'gateway')),
    ADD COLUMN subject_id integer,
    ADD COLUMN equipment_id integer REFERENCES equipment (id),
    ADD COLUMN kind text NOT NULL DEFAULT 'limit'
        CHECK (kind IN ('limit', 'predict', 'data', 'offline', 'video', 'composite')),
    ADD COLUMN detail jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN shelved_until timestamptz,
    ADD COLUMN shelved_by text,
    ADD COLUMN shelve_reason text,
    ADD COLUMN suppression_id bigint,
    ADD COLUMN feedback_required boolean NOT NULL DEFAULT true,
    ADD COLUMN disposition text NOT NULL DEFAULT 'due'
        CHECK (disposition IN ('due', 'filed', 'returned', 'accepted', 'not_required')),
    ADD CONSTRAINT alarms_condition_check CHECK (condition ~ '^[A-Z][A-Z_]{1,31}$'),
    ADD CONSTRAINT alarms_state_check CHECK (state IN (
        'UNACK', 'ACKED', 'RTN_UNACK', 'NORMAL', 'SHELVED', 'SUPPRESSED', 'OUT_OF_SERVICE'));
UPDATE alarms a SET subject_id = a.tag_id, equipment_id = t.equipment_id FROM tags t WHERE t.id = a.tag_id;
UPDATE alarms SET kind = CASE
    WHEN condition IN ('HIGH', 'LOW') THEN 'limit'
    WHEN condition IN ('ROC', 'PREDICT') THEN 'predict'
    WHEN condition = 'STALE' THEN 'offline'
    ELSE 'data' END;
-- alarms closed before this migration had no feedback loop
UPDATE alarms SET disposition = 'not_required' WHERE closed_at IS NOT NULL;
ALTER TABLE alarms ALTER COLUMN subject_id SET NOT NULL;
ALTER TABLE alarms ADD CONSTRAINT alarms_tag_subject CHECK ((subject_kind = 'tag') = (tag_id IS NOT NULL)
    AND (subject_kind <> 'tag' OR tag_id = subject_id));

DROP INDEX alarms_one_open;
CREATE UNIQUE INDEX alarms_one_open ON alarms (subject_kind, subject_id, condition) WHERE state <> 'NORMAL';
CREATE INDEX alarms_shelved ON alarms (shelved_until) WHERE state = 'SHELVED';
CREATE INDEX alarms_unclosed ON alarms (enterprise_id, disposition) WHERE closed_at IS NULL;

ALTER TABLE alarm_journal ALTER COLUMN level DROP NOT NULL;
ALTER TABLE alarm_journal ADD COLUMN detail jsonb NOT NULL DEFAULT '{}';

-- Suppression by design, declared by the enterprise: maintenance or start-up of a hazard source
-- (or one piece of its equipment) for a period. Alarms of its subjects raised inside the period
-- are SUPPRESSED; when it ends, those still active re-annunciate.
CREATE TABLE suppressions (
    id               bigserial PRIMARY KEY,
    enterprise_id    integer NOT NULL REFERENCES enterprises (id),
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    equipment_id     integer REFERENCES equipment (id),
    reason_kind      text NOT NULL CHECK (reason_kind IN ('maintenance', 'startup', 'shutdown')),
    reason           text NOT NULL CHECK (length(reason) > 0),
    declared_by      text NOT NULL,
    declared_at      timestamptz NOT NULL DEFAULT now(),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    applied_at       timestamptz,  -- when its open alarms were suppressed (at its start)
    ended_at         timestamptz,
    ended_by         text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX suppressions_active ON suppressions (hazard_source_id, starts_at, ends_at) WHERE ended_at IS NULL;
ALTER TABLE alarms ADD CONSTRAINT alarms_suppression FOREIGN KEY (suppression_id) REFERENCES suppressions (id);

-- Disposal feedback (处置反馈) filed by the enterprise and the regulator's review of it.
-- One alarm may get several: a returned feedback is followed by a new one.
CREATE TABLE alarm_feedback (
    id              bigserial PRIMARY KEY,
    alarm_id        bigint NOT NULL REFERENCES alarms (id),
    reason          text NOT NULL CHECK (reason IN (
                        'instrument_fault', 'process_fluctuation', 'maintenance_startup',
                        'false_alarm_threshold', 'real_handled')),
    measures        text NOT NULL CHECK (length(measures) > 0),
    attachment_name text,
    attachment_type text,
    attachment      bytea,
    filed_by        text NOT NULL,
    filed_at        timestamptz NOT NULL DEFAULT now(),
    review          text NOT NULL DEFAULT 'pending' CHECK (review IN ('pending', 'accepted', 'returned')),
    reviewed_by     text,
    reviewed_at     timestamptz,
    review_comment  text NOT NULL DEFAULT '',
    CHECK ((attachment IS NULL) = (attachment_name IS NULL))
);
CREATE INDEX alarm_feedback_alarm ON alarm_feedback (alarm_id, id);
CREATE UNIQUE INDEX alarm_feedback_one_pending ON alarm_feedback (alarm_id) WHERE review = 'pending';
CREATE INDEX alarm_feedback_pending ON alarm_feedback (filed_at) WHERE review = 'pending';

-- Hidden dangers (隐患) opened from a real abnormality confirmed in feedback, tracked to closure.
CREATE TABLE hidden_dangers (
    id               bigserial PRIMARY KEY,
    alarm_id         bigint REFERENCES alarms (id),
    enterprise_id    integer NOT NULL REFERENCES enterprises (id),
    hazard_source_id integer REFERENCES hazard_sources (id),
    description      text NOT NULL CHECK (length(description) > 0),
    deadline         timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'rectified', 'closed')),
    opened_by        text NOT NULL,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    rectification    text NOT NULL DEFAULT '',
    rectified_by     text,
    rectified_at     timestamptz,
    closed_by        text,
    closed_at        timestamptz
);
CREATE INDEX hidden_dangers_open ON hidden_dangers (enterprise_id, deadline) WHERE status <> 'closed';
