-- Rollups on TimescaleDB 2.x: continuous aggregates per tag and minute, and per tag and hour,
-- refreshed by policies over the raw retention window (replayed or late data inside it is
-- picked up through TimescaleDB's invalidation log). Real-time aggregation stays on, so the
-- newest buckets are answered from raw data until they are materialized.
-- Same columns as the plain path's views: tag_id, bucket, min, max, avg, last, count.
CREATE MATERIALIZED VIEW readings_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tag_id, time_bucket(INTERVAL '1 minute', ts) AS bucket, min(value) AS min, max(value) AS max,
       avg(value) AS avg, last(value, ts) FILTER (WHERE value IS NOT NULL) AS last, count(*) AS count
FROM readings GROUP BY tag_id, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW readings_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tag_id, time_bucket(INTERVAL '1 hour', ts) AS bucket, min(value) AS min, max(value) AS max,
       avg(value) AS avg, last(value, ts) FILTER (WHERE value IS NOT NULL) AS last, count(*) AS count
FROM readings GROUP BY tag_id, time_bucket(INTERVAL '1 hour', ts)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_1m', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('readings_1h', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');
-- Retention of raw data and of the rollups is (re)applied by ingest's maintenance from the
-- configured HW_RETAIN_* settings (see ingest/storage.py).
