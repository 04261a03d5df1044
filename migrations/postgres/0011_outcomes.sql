-- Outcomes and spend: what happened after each lead, and what each source cost.

-- A lead's outcome as it stands: open, contacted, quoted, won (with the job's value, minor
-- units) or lost (with a listed reason or the business's own words).
ALTER TABLE leads ADD COLUMN outcome TEXT NOT NULL DEFAULT 'open';
ALTER TABLE leads ADD COLUMN outcome_value BIGINT;
ALTER TABLE leads ADD COLUMN outcome_reason TEXT;
ALTER TABLE leads ADD COLUMN outcome_changed_at BIGINT;
CREATE INDEX leads_outcome ON leads (org_id, outcome, created_at);

-- Every change of outcome: who (`user:…` or `api_key:…`), when, from and to.
CREATE TABLE outcome_changes (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    lead_id     TEXT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    from_outcome TEXT NOT NULL,
    to_outcome  TEXT NOT NULL,
    value       BIGINT,
    reason      TEXT,
    actor       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX outcome_changes_lead ON outcome_changes (lead_id, created_at);

-- Spend per source and calendar month (`2026-11`), minor units.
CREATE TABLE source_spend (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    widget_version  BIGINT NOT NULL,
    source_code     BIGINT NOT NULL,
    month           TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    updated_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, widget_version, source_code, month)
);

-- Rollups count won leads and their revenue; pipeline value counts open leads only (every
-- lead is open when this runs, so existing rows stay true).
ALTER TABLE report_rollups ADD COLUMN won BIGINT NOT NULL DEFAULT 0;
ALTER TABLE report_rollups ADD COLUMN revenue BIGINT NOT NULL DEFAULT 0;
