-- Rollups on plain PostgreSQL, maintained by ingest in the transaction that inserts the raw
-- rows (from the rows actually inserted, so a redelivered batch adds nothing): per tag and
-- minute, and per tag and hour. rollup_1m is partitioned by month so that retention drops
-- partitions; rollup_1h is small (8,760 rows per tag and year) and kept for years.
-- The views readings_1m and readings_1h have the same columns as the continuous aggregates of
-- the TimescaleDB path: tag_id, bucket, min, max, avg, last, count.
CREATE TABLE rollup_1m (
    tag_id  integer NOT NULL,
    bucket  timestamptz NOT NULL,
    min     double precision,
    max     double precision,
    sum     double precision NOT NULL DEFAULT 0,
    n       integer NOT NULL DEFAULT 0,      -- readings with a value
    samples integer NOT NULL DEFAULT 0,      -- all readings, whatever their quality
    last    double precision,                -- the latest value in the bucket
    last_ts timestamptz,
    PRIMARY KEY (tag_id, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE rollup_1h (LIKE rollup_1m INCLUDING DEFAULTS, PRIMARY KEY (tag_id, bucket));

CREATE VIEW readings_1m AS
SELECT tag_id, bucket, min, max, sum / NULLIF(n, 0) AS avg, last, samples::bigint AS count FROM rollup_1m;
CREATE VIEW readings_1h AS
SELECT tag_id, bucket, min, max, sum / NULLIF(n, 0) AS avg, last, samples::bigint AS count FROM rollup_1h;

-- Daily raw partitions and the monthly rollup partitions that cover the same days.
CREATE OR REPLACE FUNCTION hw_ensure_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
    month date;
    created integer := 0;
    part text;
BEGIN
    WHILE day <= last_day LOOP
        part := format('readings_p%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                part, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        month := date_trunc('month', day)::date;
        part := format('rollup_1m_p%s', to_char(month, 'YYYYMM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF rollup_1m FOR VALUES FROM (%L) TO (%L)',
                part, (month::timestamp AT TIME ZONE 'UTC'),
                ((month + INTERVAL '1 month')::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END $$;

SELECT hw_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);
-- Rollups for what is already stored (a database migrated from an earlier version).
SELECT hw_ensure_partitions(min(ts)::date, max(ts)::date) FROM readings HAVING count(*) > 0;
INSERT INTO rollup_1m (tag_id, bucket, min, max, sum, n, samples, last, last_ts)
SELECT tag_id, date_trunc('minute', ts), min(value), max(value), coalesce(sum(value), 0), count(value),
       count(*), (array_agg(value ORDER BY ts DESC) FILTER (WHERE value IS NOT NULL))[1],
       max(ts) FILTER (WHERE value IS NOT NULL)
FROM readings GROUP BY 1, 2;
INSERT INTO rollup_1h (tag_id, bucket, min, max, sum, n, samples, last, last_ts)
SELECT tag_id, date_trunc('hour', ts), min(value), max(value), coalesce(sum(value), 0), count(value),
       count(*), (array_agg(value ORDER BY ts DESC) FILTER (WHERE value IS NOT NULL))[1],
       max(ts) FILTER (WHERE value IS NOT NULL)
FROM readings GROUP BY 1, 2;
