-- Capture: visit beacons, leads with their frozen source snapshot, idempotent retries.

CREATE TABLE visits (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    widget_version  BIGINT NOT NULL,
    source_code     BIGINT NOT NULL,
    derived_channel TEXT,
    visitor_id      TEXT,
    page_url        TEXT,
    referrer        TEXT,
    utm             TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX visits_org_source ON visits (org_id, widget_version, source_code, created_at);
CREATE INDEX visits_org_created ON visits (org_id, created_at);

CREATE TABLE leads (
    id                        TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    capture_token_digest      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    step                      BIGINT NOT NULL,
    -- The snapshot: what the widget and source were called when the lead arrived. Never updated.
    widget_version            BIGINT NOT NULL,
    widget_name               TEXT NOT NULL,
    source_code               BIGINT NOT NULL,
    source_name               TEXT NOT NULL,
    source_category           TEXT NOT NULL,
    derived_channel           TEXT,
    first_touch_widget_version BIGINT,
    first_touch_source_code   BIGINT,
    first_touch               TEXT,
    raw_params                TEXT NOT NULL,
    address                   TEXT NOT NULL,
    project                   TEXT,
    personal                  TEXT,
    contact                   TEXT,
    owner_occupied            BIGINT,
    enrichment                TEXT,
    enrichment_state          TEXT NOT NULL DEFAULT 'none',
    enrichment_lease_until    BIGINT NOT NULL DEFAULT 0,
    enrichment_attempts       BIGINT NOT NULL DEFAULT 0,
    event_sequence            BIGINT NOT NULL DEFAULT 0,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    enriched_at               BIGINT
);
CREATE INDEX leads_org_created ON leads (org_id, created_at, id);
CREATE INDEX leads_org_source ON leads (org_id, widget_version, source_code, created_at);
CREATE INDEX leads_enrichment ON leads (enrichment_state, enrichment_lease_until);

-- A retried capture request (same Idempotency-Key) gets the first answer back.
CREATE TABLE idempotency_keys (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE INDEX events_lead ON events (lead_id, sequence);
