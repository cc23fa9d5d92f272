-- Readings on plain PostgreSQL: native range partitions by day, created ahead by
-- hw_ensure_partitions() (called by migrate and by ingest before writing a new day).
CREATE TABLE readings (
    ts      timestamptz NOT NULL,
    tag_id  integer NOT NULL,
    value   double precision,
    quality smallint NOT NULL,
    PRIMARY KEY (tag_id, ts)
) PARTITION BY RANGE (ts);

CREATE FUNCTION hw_ensure_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
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
        day := day + 1;
    END LOOP;
    RETURN created;
END $$;

SELECT hw_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);
