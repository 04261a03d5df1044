-- Every change to an organization's widgets or sources moves its catalog version, in the same
-- transaction as the change. Capture batches keep each organization's catalog (the widgets and
-- sources attribution resolves against) in memory and read only this number to know the copy is
-- current, on every node. Triggers, so no code path that changes the catalog can forget it; only
-- the columns attribution reads move it (a QR code's first download, a widget's next source
-- code do not). On PostgreSQL the triggers lock the organization's row: every transaction that
-- changes a catalog locks that row first, so the order is always organization, widget, source.
ALTER TABLE organizations ADD COLUMN catalog_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = OLD.org_id;
    ELSE
        UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = NEW.org_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER widgets_catalog AFTER INSERT OR UPDATE OF version, name, status OR DELETE ON widgets
    FOR EACH ROW EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER sources_catalog
    AFTER INSERT OR UPDATE OF widget_id, code, name, channel_category, status OR DELETE ON sources
    FOR EACH ROW EXECUTE FUNCTION bump_catalog_version();
