-- Multi-touch attribution: every lead keeps its visitor's touches (tracked visits within a
-- year before it, then its own arrival) and the organization's models read them with its
-- lookback window and time-decay half-life.

-- The widget's first-party visitor id, and the touches ([{at, w, s, ch?}], oldest first, the
-- arrival last) gathered when the lead arrived. A lead without a visitor id has its arrival only.
ALTER TABLE leads ADD COLUMN visitor_id TEXT;
ALTER TABLE leads ADD COLUMN touches TEXT;
CREATE INDEX visits_visitor ON visits (org_id, visitor_id, created_at) WHERE visitor_id IS NOT NULL;

ALTER TABLE organizations ADD COLUMN credit_lookback_days INTEGER NOT NULL DEFAULT 90;
ALTER TABLE organizations ADD COLUMN credit_half_life_days INTEGER NOT NULL DEFAULT 7;
-- A recount of the model rollups (after a change of lookback or half-life), done a chunk of
-- leads at a time in (created_at, id) order: when it was asked for, the last lead counted, and
-- how many leads are counted so far. Leads after the cursor are left to the recount.
ALTER TABLE organizations ADD COLUMN credit_recount_requested_at INTEGER;
ALTER TABLE organizations ADD COLUMN credit_recount_at INTEGER;
ALTER TABLE organizations ADD COLUMN credit_recount_lead TEXT;
ALTER TABLE organizations ADD COLUMN credit_recount_done INTEGER NOT NULL DEFAULT 0;
-- Leads that arrived before this have one touch each; their model rows are counted by a recount.
UPDATE organizations SET credit_recount_requested_at = 0
WHERE EXISTS (SELECT 1 FROM leads WHERE leads.org_id = organizations.id);
