-- Covering index for the source report: counting leads per source in a date range, with the
-- enrichment and contact counters, reads only this index.
CREATE INDEX leads_report ON leads (org_id, widget_version, source_code, created_at, enrichment_state, step);
