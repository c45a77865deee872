-- 0004: the retention cutoff (serve --retention; docs/postgres.md,
-- "Retention").
--
-- retention.cutoff_ns is the event time before which no event is shown or
-- accepted: every replica reads it (at Open and every few seconds) and
-- bounds its searches by it; it only moves forward (Store.Expire sets it
-- with greatest()). Events before it are deleted a month at a time, when
-- their whole partition is before it. NULL: no cutoff.
CREATE TABLE retention (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    cutoff_ns bigint
);
INSERT INTO retention (id) VALUES (true);
