-- Daily safety commitments, dynamic risk and the KPI index (owner: alarms).
--
-- A safety commitment (安全承诺公告) is filed once per local day for each hazard source by its
-- enterprise; filing again the same day adds a revision (the newest one counts). Rows are never
-- changed or deleted: who filed what and when is the audit trail.
CREATE TABLE safety_commitments (
    id                   bigserial PRIMARY KEY,
    enterprise_id        integer NOT NULL REFERENCES enterprises (id),
    hazard_source_id     integer NOT NULL REFERENCES hazard_sources (id),
    day                  date NOT NULL,  -- the local day (policy time zone) it commits to
    revision             smallint NOT NULL CHECK (revision >= 1),
    unit_status          text NOT NULL CHECK (unit_status IN ('running', 'stopped', 'maintenance')),
    special_operations   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(special_operations) = 'object'),
    trial_production     boolean NOT NULL DEFAULT false,  -- 试生产
    startup              boolean NOT NULL DEFAULT false,  -- start-up or shutdown (开停车) today
    major_hidden_dangers smallint NOT NULL DEFAULT 0 CHECK (major_hidden_dangers >= 0),
    risk_level           smallint NOT NULL CHECK (risk_level BETWEEN 1 AND 4),  -- as declared: 1 红 … 4 蓝
    commitment           text NOT NULL CHECK (length(commitment) > 0),
    principal            text NOT NULL CHECK (length(principal) > 0),  -- who commits (主要负责人)
    filed_by             text NOT NULL,  -- the user who filed it
    filed_role           text NOT NULL,
    filed_at             timestamptz NOT NULL,
    UNIQUE (hazard_source_id, day, revision)
);
CREATE INDEX safety_commitments_enterprise_day ON safety_commitments (enterprise_id, day);

CREATE FUNCTION hw_commitments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'safety commitments are append-only: file a new revision';
END $$;
CREATE TRIGGER safety_commitments_append_only BEFORE UPDATE OR DELETE ON safety_commitments
    FOR EACH ROW EXECUTE FUNCTION hw_commitments_append_only();

-- Dynamic risk (红/橙/黄/蓝) of hazard sources and enterprises: the current level, and a history
-- row whenever a level changes (computed on the clock's tick by alarms.risk).
CREATE TABLE risk_levels (
    subject_kind  text NOT NULL CHECK (subject_kind IN ('hazard_source', 'enterprise')),
    subject_id    integer NOT NULL,
    enterprise_id integer NOT NULL REFERENCES enterprises (id),
    level         smallint NOT NULL CHECK (level BETWEEN 1 AND 4),
    inherent      smallint NOT NULL CHECK (inherent BETWEEN 1 AND 4),
    score         double precision NOT NULL,
    factors       jsonb NOT NULL DEFAULT '{}',
    since         timestamptz NOT NULL,  -- when it reached this level
    computed_at   timestamptz NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
);
CREATE INDEX risk_levels_enterprise ON risk_levels (enterprise_id);

CREATE TABLE risk_history (
    id            bigserial PRIMARY KEY,
    subject_kind  text NOT NULL CHECK (subject_kind IN ('hazard_source', 'enterprise')),
    subject_id    integer NOT NULL,
    enterprise_id integer NOT NULL REFERENCES enterprises (id),
    at            timestamptz NOT NULL,
    from_level    smallint CHECK (from_level BETWEEN 1 AND 4),  -- NULL: the first computation
    level         smallint NOT NULL CHECK (level BETWEEN 1 AND 4),
    score         double precision NOT NULL,
    factors       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX risk_history_subject ON risk_history (subject_kind, subject_id, at);
CREATE INDEX risk_history_enterprise ON risk_history (enterprise_id, at);

-- KPIs read the journal by time.
CREATE INDEX alarm_journal_at ON alarm_journal (at);
