-- The enterprise ledger, synchronized from devices.yaml (owner: ingest.ledger_sync).
CREATE TABLE enterprises (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    credit_code text NOT NULL UNIQUE,
    division    text NOT NULL CHECK (division ~ '^[0-9]{6}$'),
    address     text NOT NULL DEFAULT '',
    lon         double precision,
    lat         double precision,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enterprises_division ON enterprises (division text_pattern_ops);

CREATE TABLE hazard_sources (
    id                 serial PRIMARY KEY,
    enterprise_id      integer NOT NULL REFERENCES enterprises (id),
    code               text NOT NULL,
    name               text NOT NULL,
    people_within_500m integer NOT NULL,
    s                  double precision NOT NULL,
    r                  double precision NOT NULL,
    grade              smallint NOT NULL CHECK (grade BETWEEN 1 AND 4),
    principal          text NOT NULL,
    technical          text NOT NULL,
    operational        text NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, code)
);

-- Every change of S, R or grade is kept (GB 18218: recompute on every ledger change).
CREATE TABLE hazard_source_grades (
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    computed_at      timestamptz NOT NULL DEFAULT now(),
    s                double precision NOT NULL,
    r                double precision NOT NULL,
    grade            smallint NOT NULL,
    PRIMARY KEY (hazard_source_id, computed_at)
);

CREATE TABLE equipment (
    id               serial PRIMARY KEY,
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    code             text NOT NULL,
    name             text NOT NULL,
    kind             text NOT NULL,
    UNIQUE (hazard_source_id, code)
);

CREATE TABLE gateways (
    id            serial PRIMARY KEY,
    enterprise_id integer NOT NULL REFERENCES enterprises (id),
    code          text NOT NULL,
    name          text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'unknown',
    status_at     timestamptz,
    last_seq      bigint,
    last_seen_at  timestamptz,
    seq_gaps      bigint NOT NULL DEFAULT 0,
    UNIQUE (enterprise_id, code)
);

CREATE TABLE tags (
    id               serial PRIMARY KEY,
    enterprise_id    integer NOT NULL REFERENCES enterprises (id),
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    equipment_id     integer NOT NULL REFERENCES equipment (id),
    gateway_id       integer NOT NULL REFERENCES gateways (id),
    code             text NOT NULL,
    name             text NOT NULL,
    kind             text NOT NULL,
    unit             text NOT NULL,
    range_low        double precision NOT NULL,
    range_high       double precision NOT NULL,
    ll               double precision,
    l                double precision,
    h                double precision,
    hh               double precision,
    deadband         double precision NOT NULL,
    poll_interval_s  double precision NOT NULL,
    in_service       boolean NOT NULL DEFAULT true,
    oos_reason       text,
    oos_by           text,
    oos_at           timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, code)
);
