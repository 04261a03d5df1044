-- Only events still waiting for fan-out need an index entry: marking an event done then removes
-- one entry instead of moving it, which keeps the dispatcher's writes small.
DROP INDEX events_fan_out;
CREATE INDEX events_pending_fan_out ON events (created_at, id) WHERE fanned_out = 0;
