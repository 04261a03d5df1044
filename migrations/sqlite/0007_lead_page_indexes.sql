-- The Leads page lists newest first (created_at DESC, id DESC) under any one filter. Each filter
-- gets an index that ends in exactly that order, so a page reads 26 index entries instead of
-- sorting every matching lead (or scanning all of them when the filter matches few).
DROP INDEX leads_org_source;
CREATE INDEX leads_page_source ON leads (org_id, widget_version, source_code, created_at, id);
CREATE INDEX leads_page_widget ON leads (org_id, widget_version, created_at, id);
CREATE INDEX leads_page_status ON leads (org_id, status, created_at, id);
