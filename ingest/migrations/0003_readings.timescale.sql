-- Readings on TimescaleDB 2.x: a hypertable with daily chunks and columnstore compression
-- segmented by tag and ordered by time.
CREATE TABLE readings (
    ts      timestamptz NOT NULL,
    tag_id  integer NOT NULL,
    value   double precision,
    quality smallint NOT NULL,
    PRIMARY KEY (tag_id, ts)
);
SELECT create_hypertable('readings', by_range('ts', INTERVAL '1 day'));
ALTER TABLE readings SET (
    timescaledb.enable_columnstore = true,
    timescaledb.segmentby = 'tag_id',
    timescaledb.orderby = 'ts DESC'
);
CALL add_columnstore_policy('readings', after => INTERVAL '7 days');
SELECT add_retention_policy('readings', drop_after => INTERVAL '400 days');

-- Kept for symmetry with the plain path: chunks are created by TimescaleDB itself.
CREATE FUNCTION hw_ensure_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE sql AS $$ SELECT 0 $$;
