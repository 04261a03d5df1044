-- Every change to an organization's widgets or sources moves its catalog version, in the same
-- transaction as the change. Capture batches keep each organization's catalog (the widgets and
-- sources attribution resolves against) in memory and read only this number to know the copy is
-- current, on every node. Triggers, so no code path that changes the catalog can forget it; only
-- the columns attribution reads move it (a QR code's first download, a widget's next source
-- code do not). On PostgreSQL the triggers lock the organization's row: every transaction that
-- changes a catalog locks that row first, so the order is always organization, widget, source.
ALTER TABLE organizations ADD COLUMN catalog_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER widgets_catalog_insert AFTER INSERT ON widgets BEGIN
    UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = NEW.org_id;
END;
CREATE TRIGGER widgets_catalog_update AFTER UPDATE OF version, name, status ON widgets BEGIN
    UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = NEW.org_id;
END;
CREATE TRIGGER widgets_catalog_delete AFTER DELETE ON widgets BEGIN
    UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = OLD.org_id;
END;
CREATE TRIGGER sources_catalog_insert AFTER INSERT ON sources BEGIN
    UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = NEW.org_id;
END;
CREATE TRIGGER sources_catalog_update AFTER UPDATE OF widget_id, code, name, channel_category, status ON sources BEGIN
    UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = NEW.org_id;
END;
CREATE TRIGGER sources_catalog_delete AFTER DELETE ON sources BEGIN
    UPDATE organizations SET catalog_version = catalog_version + 1 WHERE id = OLD.org_id;
END;
