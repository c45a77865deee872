-- 0001: the event log.
--
-- See docs/design/postgres.md for the reasons behind each choice.

-- log_head holds the last sequence number handed out. Append updates its one
-- row in the transaction that stores the events: the row lock serialises
-- appenders (of every replica), so transactions commit in sequence-number
-- order and the committed sequence numbers are always 1..N, without gaps.
CREATE TABLE log_head (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq bigint  NOT NULL CHECK (seq >= 0)
);
INSERT INTO log_head (id, seq) VALUES (true, 0);

-- events holds one row per stored event, partitioned by month of event time.
--
-- Times are Unix nanoseconds (bigint): timestamptz has microseconds and the
-- API keeps nanoseconds; one integer column is also the exact order of
-- searches, (event_time_ns DESC, seq DESC). Strings are stored as the API
-- gives them, except that the bytes 0x00 (which text and jsonb cannot hold)
-- and 0x01 are escaped as 0x01 0x02 and 0x01 0x01 (see postgres/text.go).
-- The text columns use the C collation: byte-wise comparison, as the API's
-- exact filters mean it.
CREATE TABLE events (
    event_time_ns      bigint   NOT NULL,
    seq                bigint   NOT NULL,
    receive_time_ns    bigint,            -- NULL: not set
    id                 uuid     NOT NULL,
    status_code        integer,           -- NULL: the event has no status
    type               smallint NOT NULL,
    read_only          boolean  NOT NULL,
    event_source       text COLLATE "C" NOT NULL,
    action             text COLLATE "C" NOT NULL,
    principal          text COLLATE "C" NOT NULL,
    source_ip          text COLLATE "C" NOT NULL,
    resource           text COLLATE "C" NOT NULL,
    workspace          text COLLATE "C" NOT NULL,
    user_agent         text COLLATE "C" NOT NULL,
    status_message     text COLLATE "C",  -- NULL when status_code is NULL
    request_parameters jsonb,             -- NULL: none given (nil), {} when empty
    metadata           jsonb,             -- NULL: none given (nil), {} when empty
    PRIMARY KEY (event_time_ns, seq)
) PARTITION BY RANGE (event_time_ns);

-- Events whose month has no partition (yet) land here.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- One index per exact filter, each ordered by (event_time_ns, seq) within a
-- value, so that "field = value, newest first" is an ordered index scan that
-- stops after one page. resource and workspace may hold up to 2048 bytes
-- (4096 escaped), more than a B-tree entry holds: their indexes keep the
-- first 512 characters and searches recheck the whole value.
CREATE INDEX events_event_source ON events (event_source, event_time_ns, seq);
CREATE INDEX events_resource     ON events ((left(resource, 512)), event_time_ns, seq);
CREATE INDEX events_principal    ON events (principal, event_time_ns, seq);
CREATE INDEX events_source_ip    ON events (source_ip, event_time_ns, seq);
CREATE INDEX events_workspace    ON events ((left(workspace, 512)), event_time_ns, seq);
CREATE INDEX events_action       ON events (action, event_time_ns, seq);

-- event_ids makes ids unique across partitions (a unique index of a
-- partitioned table must include the partition key) and finds the stored
-- event of a retried id. The unique seq index proves sequence numbers unique
-- and serves reads by position in the log.
CREATE TABLE event_ids (
    id            uuid   PRIMARY KEY,
    seq           bigint NOT NULL UNIQUE,
    event_time_ns bigint NOT NULL
);

-- service_keys holds secrets the replicas must share: the key that
-- authenticates page tokens (Store.PageTokenKey), made by the first replica
-- that asks for it.
CREATE TABLE service_keys (
    name       text        PRIMARY KEY,
    key        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- audittrail_ensure_partition creates the partition of the month holding
-- month_start (named events_YYYY_MM), moving that month's events out of the
-- default partition. It returns false when the partition exists. Safe to
-- call from several sessions at once. Operators may call it for past months
-- before loading old events.
CREATE FUNCTION audittrail_ensure_partition(month_start date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    m    date   := date_trunc('month', month_start)::date;
    name text   := 'events_' || to_char(m, 'YYYY_MM');
    lo   bigint := (extract(epoch FROM (m::timestamp AT TIME ZONE 'UTC')) * 1000000000)::bigint;
    hi   bigint := (extract(epoch FROM ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC')) * 1000000000)::bigint;
BEGIN
    IF m < date '1970-01-01' OR m >= date '2262-01-01' THEN
        RAISE EXCEPTION 'month % is outside the range of storable event times', m;
    END IF;
    -- One creator at a time (replicas start together).
    PERFORM pg_advisory_xact_lock(7243411203398457041);
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'events'::regclass AND c.relname = name) THEN
        RETURN false;
    END IF;
    -- No event may reach the default partition while its rows of the month
    -- move: attaching checks that it holds none.
    LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE event_time_ns >= %s AND event_time_ns < %s RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', name, lo, hi);
    RETURN true;
END
$$;
