-- Reports: the organization's time zone (where its days begin), and the score and pipeline
-- value (the estimate's midpoint) of each enriched lead as plain numbers, so reports sum them
-- without reading JSON.

ALTER TABLE organizations ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE leads ADD COLUMN score BIGINT;
ALTER TABLE leads ADD COLUMN pipeline_value BIGINT;
UPDATE leads SET
    score = (enrichment::json ->> 'score')::bigint,
    pipeline_value = ((enrichment::json -> 'estimate' ->> 'price_low')::bigint
        + (enrichment::json -> 'estimate' ->> 'price_high')::bigint) / 2
WHERE enrichment IS NOT NULL;

-- The channel category of the source a person corrected a lead to, as it was then: the channel
-- report counts a lead under the category it was credited with, never today's.
ALTER TABLE leads ADD COLUMN corrected_source_category TEXT;
