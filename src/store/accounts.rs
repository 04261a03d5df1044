//! Dashboard accounts: logins, their memberships of organizations, database sessions and
//! one-time invite links. One login (an e-mail address) may belong to several organizations,
//! each with its own role; a session works in one of them at a time. Tokens arrive here
//! already digested; the plain values live only in the cookie or the link.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conflict, Store, StoreError, is_unique_violation, now_ms};
use crate::domain::ids::{OrgId, prefixed_id};
use crate::domain::user::Role;

/// A password hash no argon2 verification can match: the user must set one via a link.
const NO_PASSWORD: &str = "!";

/// A login as a member of one organization: `org_id` and `role` are the membership's.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub org_id: OrgId,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    /// When the membership began.
    pub created_at: i64,
}

impl User {
    /// Whether the user can sign in yet (not while an invite or access reset is pending).
    pub fn has_password(&self) -> bool {
        self.password_hash != NO_PASSWORD
    }
}

/// A signed-in browser: the user as a member of the organization the session works in, and
/// the CSRF token every form of this session must carry.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// One organization a login belongs to, for the switcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org_id: OrgId,
    pub org_name: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct Invite {
    pub org_id: OrgId,
    pub org_name: String,
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
}

/// A link sent but not used yet, as the Team tab lists it.
#[derive(Debug, Clone)]
pub struct PendingInvite {
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
}

/// A login and one of its memberships: `FROM users u JOIN memberships m`.
const MEMBER_COLUMNS: &str = "u.id, m.org_id, u.email, u.password_hash, m.role, m.created_at";
const MEMBERS: &str = "users u JOIN memberships m ON m.user_id = u.id";

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        org_id: OrgId::from_stored(row.try_get("org_id")?),
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: parse_role(&role)?,
        created_at: row.try_get("created_at")?,
    })
}

fn parse_role(stored: &str) -> Result<Role, StoreError> {
    Role::parse("role", stored).map_err(|_| StoreError::Corrupt(format!("role {stored:?}")))
}

/// Inserts a new login with its first membership, inside the caller's transaction
/// (organization creation) or on the pool. A taken address is a conflict, not an error.
pub(super) async fn insert_user(
    conn: &mut sqlx::AnyConnection,
    user: &User,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, org_id, email, password_hash, role, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.id)
    .bind(user.org_id.as_str())
    .bind(user.email.to_lowercase())
    .bind(&user.password_hash)
    .bind(user.role.id())
    .bind(user.created_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Conflict::DuplicateEmail.into()
        } else {
            StoreError::from(e)
        }
    })?;
    insert_membership(conn, &user.id, &user.org_id, user.role, user.created_at).await
}

/// Adds a login to an organization; a second membership of the same organization is a
/// conflict.
async fn insert_membership(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    org: &OrgId,
    role: Role,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(org.as_str())
    .bind(role.id())
    .bind(at)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Conflict::AlreadyMember.into()
        } else {
            StoreError::from(e)
        }
    })?;
    Ok(())
}

/// The login with this address, and its password hash, whatever organizations it is in.
async fn login_by_email(
    conn: &mut sqlx::AnyConnection,
    email: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
        .bind(email.to_lowercase())
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("password_hash")?)))
        .transpose()
}

/// Deletes the unused links for an address in an organization; returns how many.
async fn revoke_pending(
    conn: &mut sqlx::AnyConnection,
    org: &OrgId,
    email: &str,
) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM invites WHERE org_id = $1 AND email = $2 AND used_at IS NULL")
            .bind(org.as_str())
            .bind(email.to_lowercase())
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// Uses an invite link once, in the caller's transaction: its organization, address and role.
async fn use_invite(
    conn: &mut sqlx::AnyConnection,
    token_digest: &str,
    now: i64,
) -> Result<(OrgId, String, Role), StoreError> {
    let row = sqlx::query(
        "UPDATE invites SET used_at = $1 \
         WHERE token_digest = $2 AND used_at IS NULL AND expires_at > $1 \
         RETURNING org_id, email, role",
    )
    .bind(now)
    .bind(token_digest)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    let role: String = row.try_get("role")?;
    Ok((
        OrgId::from_stored(row.try_get("org_id")?),
        row.try_get("email")?,
        parse_role(&role)?,
    ))
}

impl User {
    /// A new login record with a fresh id, as a member of `org`.
    pub(super) fn new(org: &OrgId, email: &str, password_hash: &str, role: Role, at: i64) -> Self {
        Self {
            id: prefixed_id("usr_"),
            org_id: org.clone(),
            email: email.to_lowercase(),
            password_hash: password_hash.to_owned(),
            role,
            created_at: at,
        }
    }
}

impl Store {
    /// A login by e-mail (lower-cased), as a member of its oldest organization: where a new
    /// session starts. `None` when the address has no login or no membership left.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE u.email = $1 \
             ORDER BY m.created_at, m.org_id LIMIT 1"
        ));
        let row = sqlx::query(sql)
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The organization's members.
    pub async fn users(&self, org: &OrgId) -> Result<Vec<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE m.org_id = $1 ORDER BY m.created_at, u.email"
        ));
        let rows = sqlx::query(sql)
            .bind(org.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Every organization a login belongs to, oldest membership first.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.org_id, o.name, m.role FROM memberships m \
             JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 \
             ORDER BY m.created_at, m.org_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(Membership {
                    org_id: OrgId::from_stored(r.try_get("org_id")?),
                    org_name: r.try_get("name")?,
                    role: parse_role(&role)?,
                })
            })
            .collect()
    }

    /// Adds a member with a password already hashed (the operator's `leadtrail user add`). An
    /// address that already has a login joins this organization with its own password kept.
    pub async fn create_user(
        &self,
        org: &OrgId,
        email: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        self.organization(org).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let user = match login_by_email(&mut tx, email).await? {
            Some((id, hash)) => {
                insert_membership(&mut tx, &id, org, role, now).await?;
                User {
                    id,
                    password_hash: hash,
                    ..User::new(org, email, NO_PASSWORD, role, now)
                }
            }
            None => {
                let user = User::new(org, email, password_hash, role, now);
                insert_user(&mut tx, &user).await?;
                user
            }
        };
        tx.commit().await?;
        Ok(user)
    }

    /// A session working in `org`, which must be one of the user's organizations.
    pub async fn create_session(
        &self,
        user_id: &str,
        org: &OrgId,
        token_digest: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_digest, user_id, org_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_digest)
        .bind(user_id)
        .bind(org.as_str())
        .bind(csrf_token)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session for a cookie's token digest, with its user as a member of the
    /// session's organization. Expired sessions, and sessions whose membership ended, are not
    /// found.
    pub async fn session(&self, token_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id \
             JOIN memberships m ON m.user_id = s.user_id AND m.org_id = s.org_id \
             WHERE s.token_digest = $1 AND s.expires_at > $2"
        ));
        let row = sqlx::query(sql)
            .bind(token_digest)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(SessionRecord {
                user: user_from_row(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Moves a session to another of its user's organizations; `NotFound` unless the user is
    /// a member there.
    pub async fn switch_organization(
        &self,
        token_digest: &str,
        user_id: &str,
        org: &OrgId,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET org_id = $1 WHERE token_digest = $2 AND user_id = $3 \
             AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $3 AND m.org_id = $1)",
        )
        .bind(org.as_str())
        .bind(token_digest)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn delete_session(&self, token_digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_digest = $1")
            .bind(token_digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn forget_expired_sessions(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let invites = sqlx::query("DELETE FROM invites WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(sessions.rows_affected() + invites.rows_affected())
    }

    /// Records a one-time invite link for `email`, replacing any earlier link for the same
    /// address in this organization (only the newest works). Refused only when the address is
    /// already a member here: whether it has a login elsewhere is nobody's business.
    pub async fn create_invite(
        &self,
        org: &OrgId,
        email: &str,
        role: Role,
        token_digest: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let member: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM users u JOIN memberships m ON m.user_id = u.id \
             WHERE u.email = $1 AND m.org_id = $2",
        )
        .bind(email.to_lowercase())
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?;
        if member.is_some() {
            return Err(Conflict::AlreadyMember.into());
        }
        self.insert_invite(org, email, role, token_digest, expires_at)
            .await
    }

    async fn insert_invite(
        &self,
        org: &OrgId,
        email: &str,
        role: Role,
        token_digest: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        revoke_pending(&mut tx, org, email).await?;
        sqlx::query(
            "INSERT INTO invites (token_digest, org_id, email, role, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_digest)
        .bind(org.as_str())
        .bind(email.to_lowercase())
        .bind(role.id())
        .bind(now_ms())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The organization's links not yet used and not expired, newest first.
    pub async fn pending_invites(&self, org: &OrgId) -> Result<Vec<PendingInvite>, StoreError> {
        let rows = sqlx::query(
            "SELECT email, role, expires_at FROM invites \
             WHERE org_id = $1 AND used_at IS NULL AND expires_at > $2 ORDER BY created_at DESC",
        )
        .bind(org.as_str())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(PendingInvite {
                    email: r.try_get("email")?,
                    role: parse_role(&role)?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Withdraws every unused link for `email` in this organization; `NotFound` when there
    /// was none.
    pub async fn revoke_invite(&self, org: &OrgId, email: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = revoke_pending(&mut tx, org, email).await?;
        tx.commit().await?;
        if revoked == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// An unused, unexpired invite.
    pub async fn invite(&self, token_digest: &str) -> Result<Option<Invite>, StoreError> {
        let row = sqlx::query(
            "SELECT i.org_id, o.name, i.email, i.role, i.expires_at FROM invites i \
             JOIN organizations o ON o.id = i.org_id \
             WHERE i.token_digest = $1 AND i.used_at IS NULL AND i.expires_at > $2",
        )
        .bind(token_digest)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok(Invite {
                org_id: OrgId::from_stored(r.try_get("org_id")?),
                org_name: r.try_get("name")?,
                email: r.try_get("email")?,
                role: parse_role(&role)?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Uses an invite exactly once by choosing a password: creates the login and its
    /// membership, or sets the password of a login waiting for one (an access reset). A login
    /// that has a password already is refused (`LoginExists`; the link stays unused): it joins
    /// through `join_by_invite`, logged in — a link must never set someone else's password.
    pub async fn accept_invite(
        &self,
        token_digest: &str,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (org, email, role) = use_invite(&mut tx, token_digest, now).await?;
        match login_by_email(&mut tx, &email).await? {
            None => {
                insert_user(&mut tx, &User::new(&org, &email, password_hash, role, now)).await?
            }
            Some((_, hash)) if hash != NO_PASSWORD => return Err(Conflict::LoginExists.into()),
            Some((id, _)) => {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                upsert_membership(&mut tx, &id, &org, role, now).await?;
            }
        }
        tx.commit().await?;
        self.member(&org, &email).await
    }

    /// Uses an invite exactly once for the login `user_id` (signed in): it joins the link's
    /// organization with the link's role. Refused when the link names another address.
    pub async fn join_by_invite(
        &self,
        token_digest: &str,
        user_id: &str,
    ) -> Result<User, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (org, email, role) = use_invite(&mut tx, token_digest, now).await?;
        let login = login_by_email(&mut tx, &email).await?;
        if login.as_ref().is_none_or(|(id, _)| id != user_id) {
            return Err(Conflict::InviteForAnotherLogin.into());
        }
        upsert_membership(&mut tx, user_id, &org, role, now).await?;
        tx.commit().await?;
        self.member(&org, &email).await
    }

    /// A login as a member of `org`.
    async fn member(&self, org: &OrgId, email: &str) -> Result<User, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE u.email = $1 AND m.org_id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(email.to_lowercase())
            .bind(org.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    /// Locks a member out of this organization until they follow a fresh link: their sessions
    /// here end and a new link for the same address and role is recorded. A login that
    /// belongs to this organization only also loses its password (the link sets a new one); a
    /// login that belongs elsewhere too keeps it — another organization's access is not this
    /// owner's to take — and the link then needs that login.
    pub async fn reset_user_access(
        &self,
        org: &OrgId,
        user_id: &str,
        token_digest: &str,
        expires_at: i64,
    ) -> Result<User, StoreError> {
        let user = self.org_user(org, user_id).await?;
        let mut tx = self.begin_write().await?;
        let elsewhere: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE user_id = $1 AND org_id <> $2",
        )
        .bind(user_id)
        .bind(org.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if elsewhere == 0 {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(NO_PASSWORD)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND org_id = $2")
            .bind(user_id)
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        // Until the link is used the member cannot work here: the membership waits for it.
        sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND org_id = $2")
            .bind(user_id)
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Earlier links for the address go in the same transaction as the new one.
        self.insert_invite(org, &user.email, user.role, token_digest, expires_at)
            .await?;
        Ok(user)
    }

    /// Removes a member from this organization: the membership, its sessions here and every
    /// unused link for its address here (an earlier reset link must not bring it back); a
    /// login left with no organization is deleted. Never the organization's last owner — also
    /// when two owners remove each other at the same moment: the count and the delete share
    /// one transaction, which holds the organization's row.
    pub async fn remove_user(&self, org: &OrgId, user_id: &str) -> Result<User, StoreError> {
        let mut tx = self.begin_write().await?;
        // A no-op UPDATE takes the organization's row lock on PostgreSQL (SQLite's writer lock
        // is already held): concurrent removals in one organization queue here.
        sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE m.org_id = $1 AND u.id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(org.as_str())
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let user = user_from_row(&row)?;
        if user.role == Role::Owner {
            let owners: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'",
            )
            .bind(org.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if owners <= 1 {
                return Err(Conflict::LastOwner.into());
            }
        }
        for sql in [
            "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2",
        ] {
            sqlx::query(sql)
                .bind(org.as_str())
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "DELETE FROM users WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        revoke_pending(&mut tx, org, &user.email).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn org_user(&self, org: &OrgId, user_id: &str) -> Result<User, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM {MEMBERS} WHERE m.org_id = $1 AND u.id = $2"
        ));
        let row = sqlx::query(sql)
            .bind(org.as_str())
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }
}

/// Makes `user_id` a member of `org` with `role`, or sets the role of the membership it has.
async fn upsert_membership(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    org: &OrgId,
    role: Role,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role",
    )
    .bind(user_id)
    .bind(org.as_str())
    .bind(role.id())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
