-- Capture: visit beacons, leads with their frozen source snapshot, idempotent retries.

CREATE TABLE visits (
    id              INTEGER PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    widget_version  INTEGER NOT NULL,
    source_code     INTEGER NOT NULL,
    derived_channel TEXT,
    visitor_id      TEXT,
    page_url        TEXT,
    referrer        TEXT,
    utm             TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX visits_org_source ON visits (org_id, widget_version, source_code, created_at);
CREATE INDEX visits_org_created ON visits (org_id, created_at);

CREATE TABLE leads (
    id                        TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    capture_token_digest      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    step                      INTEGER NOT NULL,
    -- The snapshot: what the widget and source were called when the lead arrived. Never updated.
    widget_version            INTEGER NOT NULL,
    widget_name               TEXT NOT NULL,
    source_code               INTEGER NOT NULL,
    source_name               TEXT NOT NULL,
    source_category           TEXT NOT NULL,
    derived_channel           TEXT,
    first_touch_widget_version INTEGER,
    first_touch_source_code   INTEGER,
    first_touch               TEXT,
    raw_params                TEXT NOT NULL,
    address                   TEXT NOT NULL,
    project                   TEXT,
    personal                  TEXT,
    contact                   TEXT,
    owner_occupied            INTEGER,
    enrichment                TEXT,
    enrichment_state          TEXT NOT NULL DEFAULT 'none',
    enrichment_lease_until    INTEGER NOT NULL DEFAULT 0,
    enrichment_attempts       INTEGER NOT NULL DEFAULT 0,
    event_sequence            INTEGER NOT NULL DEFAULT 0,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    enriched_at               INTEGER
);
CREATE INDEX leads_org_created ON leads (org_id, created_at, id);
CREATE INDEX leads_org_source ON leads (org_id, widget_version, source_code, created_at);
CREATE INDEX leads_enrichment ON leads (enrichment_state, enrichment_lease_until);

-- A retried capture request (same Idempotency-Key) gets the first answer back.
CREATE TABLE idempotency_keys (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE INDEX events_lead ON events (lead_id, sequence);
