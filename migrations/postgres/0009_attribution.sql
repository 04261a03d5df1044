-- Attribution detail (landing page, referrer, campaign tags, click ids, first touch) frozen at
-- arrival like the snapshot; how the lead entered; what the homeowner said brought them; and
-- corrections of the credited source by people, kept with who, when and why.

ALTER TABLE leads ADD COLUMN attribution TEXT;
ALTER TABLE leads ADD COLUMN attribution_note TEXT;
ALTER TABLE leads ADD COLUMN record_source TEXT NOT NULL DEFAULT 'widget';
ALTER TABLE leads ADD COLUMN self_reported TEXT;
-- The source a person re-assigned the lead to (within its widget), and that correction as
-- events show it ({source_code, source_label, reason, corrected_at}); the snapshot stays.
ALTER TABLE leads ADD COLUMN corrected_source_code BIGINT;
ALTER TABLE leads ADD COLUMN corrected_source TEXT;

-- The "How did you hear about us?" question of a widget: {"enabled": bool, "choices": [...]}.
ALTER TABLE widgets ADD COLUMN self_report TEXT;

CREATE TABLE source_corrections (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    lead_id     TEXT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    from_code   BIGINT NOT NULL,
    to_code     BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX source_corrections_lead ON source_corrections (lead_id, created_at);
