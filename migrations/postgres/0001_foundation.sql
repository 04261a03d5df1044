-- Organizations, credentials, widgets, lead sources and the event outbox.
-- Times are Unix milliseconds (UTC); flags are 0/1 integers so one SQL text serves both backends.

CREATE TABLE organizations (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    website_url         TEXT NOT NULL,
    brand_color         TEXT NOT NULL,
    tier                TEXT NOT NULL,
    public_key          TEXT NOT NULL UNIQUE,
    next_widget_version BIGINT NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    digest      TEXT NOT NULL UNIQUE,
    hint        TEXT NOT NULL,
    label       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_org ON users (org_id);

CREATE TABLE widgets (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    version          BIGINT NOT NULL,
    name             TEXT NOT NULL,
    site_url         TEXT NOT NULL,
    status           TEXT NOT NULL,
    next_source_code BIGINT NOT NULL DEFAULT 2,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (org_id, version)
);

CREATE TABLE sources (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    widget_id        BIGINT NOT NULL REFERENCES widgets (id) ON DELETE CASCADE,
    code             BIGINT NOT NULL,
    name             TEXT NOT NULL,
    name_key         TEXT NOT NULL,
    channel_category TEXT NOT NULL,
    status           TEXT NOT NULL,
    is_system        BIGINT NOT NULL DEFAULT 0,
    qr_generated     BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (widget_id, code)
);
-- Names are unique among a widget's active sources, ignoring case; archived ones may repeat.
CREATE UNIQUE INDEX sources_active_name ON sources (widget_id, name_key) WHERE status = 'active';
CREATE INDEX sources_org ON sources (org_id);

-- Transactional outbox: written in the same transaction as the change that causes the event.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    lead_id     TEXT,
    sequence    BIGINT,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_org_created ON events (org_id, created_at);
