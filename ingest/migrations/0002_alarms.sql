-- Alarms and their journal (owner: alarms). The journal is the outbox: every state change
-- appends a row in the same transaction, and consumers read it by position (id).
CREATE TABLE alarms (
    id               bigserial PRIMARY KEY,
    tag_id           integer NOT NULL REFERENCES tags (id),
    enterprise_id    integer NOT NULL REFERENCES enterprises (id),
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    condition        text NOT NULL CHECK (condition IN ('HIGH', 'LOW', 'FAULT')),
    level            smallint NOT NULL CHECK (level BETWEEN 0 AND 2),
    priority         smallint NOT NULL CHECK (priority BETWEEN 1 AND 3),
    state            text NOT NULL CHECK (state IN ('UNACK', 'ACKED', 'RTN_UNACK', 'NORMAL')),
    active           boolean NOT NULL,
    raised_at        timestamptz NOT NULL,
    value            double precision,
    limit_value      double precision,
    cleared_at       timestamptz,
    acked_at         timestamptz,
    acked_by         text,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- At most one open alarm per (tag, condition), enforced by the database.
CREATE UNIQUE INDEX alarms_one_open ON alarms (tag_id, condition) WHERE state <> 'NORMAL';
CREATE INDEX alarms_open_board ON alarms (priority, raised_at DESC) WHERE state <> 'NORMAL';
CREATE INDEX alarms_enterprise_time ON alarms (enterprise_id, raised_at DESC);

CREATE TABLE alarm_journal (
    id         bigserial PRIMARY KEY,
    alarm_id   bigint NOT NULL REFERENCES alarms (id),
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    role       text NOT NULL,
    action     text NOT NULL,
    from_state text,
    to_state   text NOT NULL,
    level      smallint NOT NULL,
    value      double precision,
    comment    text NOT NULL DEFAULT ''
);
CREATE INDEX alarm_journal_alarm ON alarm_journal (alarm_id, id);

-- Live push: every journal row is announced on channel hw_alarms (delivered at commit).
CREATE FUNCTION hw_notify_alarm_journal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hw_alarms', json_build_object(
        'journal_id', NEW.id, 'alarm_id', NEW.alarm_id, 'action', NEW.action)::text);
    RETURN NEW;
END $$;
CREATE TRIGGER alarm_journal_notify AFTER INSERT ON alarm_journal
    FOR EACH ROW EXECUTE FUNCTION hw_notify_alarm_journal();
