-- The same names as on PostgreSQL, where concurrent writers append rollup changes to
-- `rollup_deltas` and a worker folds them into `report_rollups`. SQLite has one writer at a time,
-- so its transactions add to `report_rollups` directly: the table stays empty and the view reads
-- the rollups as they are.
CREATE TABLE rollup_deltas (
    id              INTEGER PRIMARY KEY,
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
    won             INTEGER NOT NULL,
    revenue         INTEGER NOT NULL
);

CREATE VIEW rollup_totals AS
SELECT org_id, day, kind, widget_version, source_code, category, derived_channel, source_name,
    n, project, personal, contact, enriched, score_sum, pipeline_value, corrected, won, revenue
FROM report_rollups;
