-- Dispatch per endpoint: claims look at each endpoint's own due deliveries and count what it
-- has in flight; replays form their own ordering stream; endpoints remember their last error.

ALTER TABLE deliveries ADD COLUMN stream TEXT NOT NULL DEFAULT '';
-- Attempts made before the last manual resend: a resent delivery starts the retry schedule
-- over (the log keeps counting every attempt).
ALTER TABLE deliveries ADD COLUMN resend_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_endpoints ADD COLUMN last_error TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN last_error_at INTEGER;

-- Pending deliveries are looked for per endpoint, by time; delivered ones leave the index.
-- (One index, not also one by time across endpoints: every claim and record rewrites the
-- entries of the indexes it touches, and this table is the dispatcher's hottest.)
DROP INDEX deliveries_due;
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at, lease_until) WHERE status = 'pending';
-- In-flight deliveries per endpoint: a lease is set while a node sends, and cleared after.
CREATE INDEX deliveries_leased ON deliveries (endpoint_id, lease_until) WHERE lease_until > 0;
DROP INDEX deliveries_lead_order;
CREATE INDEX deliveries_lead_order ON deliveries (endpoint_id, lead_id, stream, sequence);

-- Failed deliveries, and the queues of disabled endpoints, wait for a person, not for a time.
UPDATE deliveries SET next_attempt_at = 253402300799000 WHERE status = 'failed';
UPDATE deliveries SET next_attempt_at = 253402300799000
 WHERE status = 'pending' AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled = 0);
