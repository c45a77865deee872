-- 0005: a retention pass in progress (docs/design/retention.md).
--
-- retention.passing is set by the replica that holds the retention lock
-- when its pass begins, and cleared when the pass is over. A pass that
-- finds it set follows one that ended with its process (after deleting,
-- before its self-audit event was written), and says so (ExpireResult.
-- Resumed), so that the deletion is recorded.
ALTER TABLE retention ADD COLUMN passing boolean NOT NULL DEFAULT false;
