-- Privacy and retention. A lead's personal data (name, e-mail, phone, street, free text, raw
-- request data, the visitor link) can be erased on request; its attribution, steps, enrichment
-- and outcome stay, so reports do not change. The lead keeps when, and by whom, it was erased.
ALTER TABLE leads ADD COLUMN erased_at INTEGER;
ALTER TABLE leads ADD COLUMN erased_by TEXT;

-- Raw request data (a lead's raw arrival parameters and visitor id, a visit's page, referrer and
-- visitor id) is dropped once older than this many days; NULL keeps it.
ALTER TABLE organizations ADD COLUMN raw_data_retention_days INTEGER;
