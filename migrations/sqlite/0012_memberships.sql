-- One login, several organizations: who belongs where, and as what, is a membership. A
-- session works in one of its user's organizations at a time (the switcher changes it).
-- users.org_id and users.role now only record the organization and role the login was first
-- created with; nothing reads them (the column cannot be dropped while a foreign key names it).
CREATE TABLE memberships (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE INDEX memberships_org ON memberships (org_id, created_at);
INSERT INTO memberships (user_id, org_id, role, created_at)
    SELECT id, org_id, role, created_at FROM users;

ALTER TABLE sessions ADD COLUMN org_id TEXT REFERENCES organizations (id) ON DELETE CASCADE;
UPDATE sessions SET org_id = (SELECT u.org_id FROM users u WHERE u.id = sessions.user_id);
