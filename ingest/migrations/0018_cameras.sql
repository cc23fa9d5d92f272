-- Cameras of the ledger, synchronized from devices.yaml (owner: ingest.cameras), their status
-- as the gateways' video processes report it, their events and the snapshots that come with them.
CREATE TABLE cameras (
    id               serial PRIMARY KEY,
    enterprise_id    integer NOT NULL REFERENCES enterprises (id),
    hazard_source_id integer NOT NULL REFERENCES hazard_sources (id),
    equipment_id     integer REFERENCES equipment (id),
    gateway_id       integer NOT NULL REFERENCES gateways (id),
    code             text NOT NULL,
    name             text NOT NULL,
    url              text NOT NULL,
    in_ledger        boolean NOT NULL DEFAULT true,  -- false once removed from the devices file
    status           text NOT NULL DEFAULT 'unknown'
        CHECK (status IN ('unknown', 'online', 'offline', 'tampered')),
    status_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise_id, code)
);
CREATE INDEX cameras_gateway ON cameras (gateway_id);

-- Every status change, for the camera online rate (time online over the span).
CREATE TABLE camera_status_log (
    camera_id integer NOT NULL REFERENCES cameras (id),
    at        timestamptz NOT NULL,
    status    text NOT NULL,
    PRIMARY KEY (camera_id, at)
);

-- Edge events (new / update / end), one row per event id: redeliveries update it in place.
CREATE TABLE video_events (
    id          bigserial PRIMARY KEY,
    camera_id   integer NOT NULL REFERENCES cameras (id),
    event_id    text NOT NULL,
    kind        text NOT NULL,
    zone        text,
    started_at  timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    ended_at    timestamptz,
    score       double precision NOT NULL DEFAULT 0,
    suspected   boolean NOT NULL DEFAULT false,
    snapshot_id bigint,
    clip        text,
    detail      jsonb NOT NULL DEFAULT '{}',
    UNIQUE (camera_id, event_id)
);
CREATE INDEX video_events_open ON video_events (camera_id, kind) WHERE ended_at IS NULL;

-- The JPEG of every event (图像主动抓拍), kept for the retention period.
CREATE TABLE snapshots (
    id            bigserial PRIMARY KEY,
    camera_id     integer NOT NULL REFERENCES cameras (id),
    enterprise_id integer NOT NULL REFERENCES enterprises (id),
    event_id      text NOT NULL,
    taken_at      timestamptz NOT NULL,
    content_type  text NOT NULL DEFAULT 'image/jpeg',
    image         bytea NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (camera_id, event_id, taken_at)
);
CREATE INDEX snapshots_taken ON snapshots (taken_at);
