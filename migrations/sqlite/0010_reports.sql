-- Reports: the organization's time zone (where its days begin), and the score and pipeline
-- value (the estimate's midpoint) of each enriched lead as plain numbers, so reports sum them
-- without reading JSON.

ALTER TABLE organizations ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE leads ADD COLUMN score INTEGER;
ALTER TABLE leads ADD COLUMN pipeline_value INTEGER;
UPDATE leads SET
    score = json_extract(enrichment, '$.score'),
    pipeline_value = (json_extract(enrichment, '$.estimate.price_low')
        + json_extract(enrichment, '$.estimate.price_high')) / 2
WHERE enrichment IS NOT NULL;

-- The channel category of the source a person corrected a lead to, as it was then: the channel
-- report counts a lead under the category it was credited with, never today's.
ALTER TABLE leads ADD COLUMN corrected_source_category TEXT;

-- Rollups: counters per organization, local day of its time zone, kind (visit, lead by its
-- credited source, lead by its first touch), widget, source, credited category, derived
-- channel of the Website source and the source's name at arrival. Written with every lead,
-- step, enrichment, visit and correction; reports over whole days read these.
CREATE TABLE report_rollups (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    widget_version  INTEGER NOT NULL,
    source_code     INTEGER NOT NULL,
    category        TEXT NOT NULL,
    derived_channel TEXT NOT NULL,
    source_name     TEXT NOT NULL,
    n               INTEGER NOT NULL,
    project         INTEGER NOT NULL,
    personal        INTEGER NOT NULL,
    contact         INTEGER NOT NULL,
    enriched        INTEGER NOT NULL,
    score_sum       INTEGER NOT NULL,
    pipeline_value  INTEGER NOT NULL,
    corrected       INTEGER NOT NULL,
    PRIMARY KEY (org_id, day, kind, widget_version, source_code, category, derived_channel, source_name)
);
CREATE INDEX report_rollups_source ON report_rollups (org_id, kind, widget_version, source_code);

-- Every organization is in UTC when this runs: its days are created_at / 86400000.
INSERT INTO report_rollups
SELECT org_id, created_at / 86400000, 'lead', widget_version,
    COALESCE(corrected_source_code, source_code),
    COALESCE(corrected_source_category, source_category),
    CASE WHEN COALESCE(corrected_source_code, source_code) = 1 THEN COALESCE(derived_channel, '') ELSE '' END,
    CASE WHEN corrected_source IS NULL THEN source_name ELSE json_extract(corrected_source, '$.source_label') END,
    COUNT(*),
    SUM(CASE WHEN step >= 2 THEN 1 ELSE 0 END),
    SUM(CASE WHEN step >= 3 THEN 1 ELSE 0 END),
    SUM(CASE WHEN step >= 4 THEN 1 ELSE 0 END),
    SUM(CASE WHEN enrichment_state = 'done' THEN 1 ELSE 0 END),
    SUM(CASE WHEN enrichment_state = 'done' THEN COALESCE(score, 0) ELSE 0 END),
    SUM(CASE WHEN enrichment_state = 'done' THEN COALESCE(pipeline_value, 0) ELSE 0 END),
    SUM(CASE WHEN corrected_source_code IS NULL THEN 0 ELSE 1 END)
FROM leads
GROUP BY org_id, created_at / 86400000, widget_version,
    COALESCE(corrected_source_code, source_code),
    COALESCE(corrected_source_category, source_category),
    CASE WHEN COALESCE(corrected_source_code, source_code) = 1 THEN COALESCE(derived_channel, '') ELSE '' END,
    CASE WHEN corrected_source IS NULL THEN source_name ELSE json_extract(corrected_source, '$.source_label') END;
INSERT INTO report_rollups
SELECT org_id, created_at / 86400000, 'first',
    COALESCE(first_touch_widget_version, widget_version),
    COALESCE(first_touch_source_code, source_code), '', '', '',
    COUNT(*), 0, 0, 0, 0, 0, 0, 0
FROM leads
GROUP BY org_id, created_at / 86400000, COALESCE(first_touch_widget_version, widget_version),
    COALESCE(first_touch_source_code, source_code);
INSERT INTO report_rollups
SELECT org_id, created_at / 86400000, 'visit', widget_version, source_code, '',
    CASE WHEN source_code = 1 THEN COALESCE(derived_channel, '') ELSE '' END, '',
    COUNT(*), 0, 0, 0, 0, 0, 0, 0
FROM visits
GROUP BY org_id, created_at / 86400000, widget_version, source_code,
    CASE WHEN source_code = 1 THEN COALESCE(derived_channel, '') ELSE '' END;
