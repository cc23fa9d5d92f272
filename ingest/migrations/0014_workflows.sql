-- Workflows downstream of the alarm journal (owner: alarms): outbox consumers, escalation,
-- notifications.
--
-- Reading the journal safely. bigserial ids are taken when a row is inserted but become
-- visible when its transaction commits, so ids commit out of order: a reader that remembered
-- "last id 11" could miss id 10 committed a moment later. Each journal row therefore carries
-- the id of the transaction that wrote it (xid). A consumer first takes the horizon below,
-- then (in a later statement, so a later snapshot) reads rows with xid below it, in
-- (xid, id) order, and remembers the (xid, id) of the last row it processed. Every
-- transaction below the horizon has ended, so no row can appear there again, and a row that
-- commits later has a larger xid and sorts after the position.
ALTER TABLE alarm_journal ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX alarm_journal_outbox ON alarm_journal (xid, id);

-- The horizon: the oldest transaction still running that could write this database's journal,
-- or the next transaction id when none runs. It is pg_snapshot_xmin(pg_current_snapshot())
-- without the transactions that pg_stat_activity shows in other databases (the snapshot is
-- cluster-wide: a long transaction in another database must not hold our consumers back). A
-- transaction we cannot place (another role's session without pg_read_all_stats, a prepared
-- transaction) stays in, which only delays a row, never loses one.
CREATE FUNCTION hw_outbox_horizon() RETURNS xid8 LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(
        (SELECT min(x) FROM pg_snapshot_xip(s) AS x
          WHERE (x::text::bigint % 4294967296) NOT IN (
              SELECT backend_xid::text::bigint FROM pg_stat_activity
               WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())),
        pg_snapshot_xmax(s))
    FROM pg_current_snapshot() AS s
$$;

-- One row per named consumer: the position of the last journal row it processed.
CREATE TABLE outbox_positions (
    consumer   text PRIMARY KEY CHECK (consumer ~ '^[a-z][a-z0-9_]{0,62}$'),
    xid        xid8 NOT NULL DEFAULT '0',
    journal_id bigint NOT NULL DEFAULT 0,
    processed  bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Escalation timers, one per alarm: which stage is being timed (acknowledgement or feedback),
-- since when, how many steps of the chain have been taken, and when the next one is due.
CREATE TABLE alarm_escalations (
    alarm_id   bigint PRIMARY KEY REFERENCES alarms (id),
    stage      text NOT NULL CHECK (stage IN ('ack', 'feedback', 'paused', 'done')),
    priority   smallint NOT NULL CHECK (priority BETWEEN 1 AND 3),
    since      timestamptz NOT NULL,
    steps      smallint NOT NULL DEFAULT 0 CHECK (steps >= 0),
    next_at    timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((next_at IS NULL) OR stage IN ('ack', 'feedback'))
);
CREATE INDEX alarm_escalations_due ON alarm_escalations (next_at) WHERE next_at IS NOT NULL;

-- Deliveries: one message to one recipient on one channel — a single alarm event
-- (key 'journal:<id>') or a digest of several (key 'digest:<first item id>'). The key makes a
-- replay idempotent; status 'sent' is never sent again.
CREATE TABLE notify_deliveries (
    id              bigserial PRIMARY KEY,
    key             text NOT NULL,
    recipient       text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email', 'sms')),
    address         text NOT NULL,
    items           integer NOT NULL CHECK (items > 0),
    message         jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text,
    sent_at         timestamptz,
    UNIQUE (key, recipient, channel)
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notify_deliveries_recent ON notify_deliveries (recipient, channel, created_at);

-- What each journal row owes each recipient on each channel, before it is put in a delivery
-- (alone, or grouped with others in a digest during a flood or while rate-limited).
CREATE TABLE notify_items (
    id          bigserial PRIMARY KEY,
    journal_id  bigint NOT NULL REFERENCES alarm_journal (id),
    alarm_id    bigint NOT NULL REFERENCES alarms (id),
    recipient   text NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('webhook', 'email', 'sms')),
    address     text NOT NULL,
    priority    smallint NOT NULL,
    created_at  timestamptz NOT NULL,
    message     jsonb NOT NULL,
    delivery_id bigint REFERENCES notify_deliveries (id),
    UNIQUE (journal_id, recipient, channel)
);
CREATE INDEX notify_items_pending ON notify_items (recipient, channel, id) WHERE delivery_id IS NULL;
