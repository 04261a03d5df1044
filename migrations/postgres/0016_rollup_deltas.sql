-- Rollup changes written by capture, steps and enrichment on PostgreSQL. Every capture of an
-- organization's day adds to the same few `report_rollups` rows, so when several nodes capture at
-- once, upserting them in each transaction queues every node's commit behind the others' row
-- locks. Instead each transaction appends its changes here (no row is shared, nothing waits),
-- and a worker on every node folds them into `report_rollups` about once a second. Reports read
-- `rollup_totals`: the rollups plus the changes not folded yet, so they are exact at any moment.
-- A node of the previous release keeps upserting `report_rollups` directly, which stays correct.
CREATE TABLE rollup_deltas (
    id              BIGSERIAL PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    widget_version  BIGINT NOT NULL,
    source_code     BIGINT NOT NULL,
    category        TEXT NOT NULL,
    derived_channel TEXT NOT NULL,
    source_name     TEXT NOT NULL,
    n               BIGINT NOT NULL,
    project         BIGINT NOT NULL,
    personal        BIGINT NOT NULL,
    contact         BIGINT NOT NULL,
    enriched        BIGINT NOT NULL,
    score_sum       BIGINT NOT NULL,
    pipeline_value  BIGINT NOT NULL,
    corrected       BIGINT NOT NULL,
    won             BIGINT NOT NULL,
    revenue         BIGINT NOT NULL
);
CREATE INDEX rollup_deltas_org ON rollup_deltas (org_id, kind, day);

-- One row per rollup key, as if every change had been folded.
CREATE VIEW rollup_totals AS
SELECT org_id, day, kind, widget_version, source_code, category, derived_channel, source_name,
    CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(project) AS BIGINT) AS project,
    CAST(SUM(personal) AS BIGINT) AS personal, CAST(SUM(contact) AS BIGINT) AS contact,
    CAST(SUM(enriched) AS BIGINT) AS enriched, CAST(SUM(score_sum) AS BIGINT) AS score_sum,
    CAST(SUM(pipeline_value) AS BIGINT) AS pipeline_value,
    CAST(SUM(corrected) AS BIGINT) AS corrected, CAST(SUM(won) AS BIGINT) AS won,
    CAST(SUM(revenue) AS BIGINT) AS revenue
FROM (
    SELECT org_id, day, kind, widget_version, source_code, category, derived_channel, source_name,
        n, project, personal, contact, enriched, score_sum, pipeline_value, corrected, won, revenue
    FROM report_rollups
    UNION ALL
    SELECT org_id, day, kind, widget_version, source_code, category, derived_channel, source_name,
        n, project, personal, contact, enriched, score_sum, pipeline_value, corrected, won, revenue
    FROM rollup_deltas
) AS changes
GROUP BY org_id, day, kind, widget_version, source_code, category, derived_channel, source_name;
