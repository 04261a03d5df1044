//! Dashboard accounts: users, database sessions and one-time invite links. Tokens arrive here
//! already digested; the plain values live only in the cookie or the link.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conflict, Store, StoreError, is_unique_violation, now_ms};
use crate::domain::ids::{OrgId, prefixed_id};
use crate::domain::user::Role;

/// A password hash no argon2 verification can match: the user must set one via a link.
const NO_PASSWORD: &str = "!";

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub org_id: OrgId,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
}

impl User {
    /// Whether the user can sign in yet (not while an invite or access reset is pending).
    pub fn has_password(&self) -> bool {
        self.password_hash != NO_PASSWORD
    }
}

/// A signed-in browser: the user, and the CSRF token every form of this session must carry.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
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

const USER_COLUMNS: &str = "u.id, u.org_id, u.email, u.password_hash, u.role, u.created_at";

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        org_id: OrgId::from_stored(row.try_get("org_id")?),
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse("role", &role).map_err(|_| StoreError::Corrupt("user role".into()))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts a user inside the caller's transaction (organization creation, invite acceptance)
/// or on the pool. E-mail is the login, so a taken address is a conflict, not an error.
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
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Conflict::DuplicateEmail.into()
        } else {
            StoreError::from(e)
        }
    })?;
    Ok(())
}

impl User {
    /// A new user record with a fresh id.
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
    /// A dashboard user by login e-mail (lower-cased), across organizations: e-mail is the login.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.email = $1"
        ));
        let row = sqlx::query(sql)
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn users(&self, org: &OrgId) -> Result<Vec<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.org_id = $1 ORDER BY u.created_at, u.email"
        ));
        let rows = sqlx::query(sql)
            .bind(org.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Adds a user with a password already hashed (the operator's `leadtrail user add`).
    pub async fn create_user(
        &self,
        org: &OrgId,
        email: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        self.organization(org).await?;
        let user = User::new(org, email, password_hash, role, now_ms());
        let mut conn = self.pool.acquire().await?;
        insert_user(&mut conn, &user).await?;
        Ok(user)
    }

    pub async fn create_session(
        &self,
        user_id: &str,
        token_digest: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_digest, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_digest)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live session for a cookie's token digest; expired sessions are not found.
    pub async fn session(&self, token_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_digest = $1 AND s.expires_at > $2"
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
    /// address in this organization (only the newest works). Refused when the address already
    /// has a login (e-mail is the login, so it belongs to one organization).
    pub async fn create_invite(
        &self,
        org: &OrgId,
        email: &str,
        role: Role,
        token_digest: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        if self.user_by_email(email).await?.is_some() {
            return Err(Conflict::DuplicateEmail.into());
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
                    role: Role::parse("role", &role)
                        .map_err(|_| StoreError::Corrupt("invite role".into()))?,
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
                role: Role::parse("role", &role)
                    .map_err(|_| StoreError::Corrupt("invite role".into()))?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Uses an invite exactly once: sets the password of the existing user (an access reset) or
    /// creates the invited user. A second use of the same link is not found.
    pub async fn accept_invite(
        &self,
        token_digest: &str,
        password_hash: &str,
    ) -> Result<User, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE invites SET used_at = $1 \
             WHERE token_digest = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING org_id, email, role",
        )
        .bind(now)
        .bind(token_digest)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let org_id: String = row.try_get("org_id")?;
        let email: String = row.try_get("email")?;
        let role: String = row.try_get("role")?;
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, role = $2 WHERE org_id = $3 AND email = $4",
        )
        .bind(password_hash)
        .bind(&role)
        .bind(&org_id)
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let role = Role::parse("role", &role)
                .map_err(|_| StoreError::Corrupt("invite role".into()))?;
            let org = OrgId::from_stored(org_id);
            insert_user(&mut tx, &User::new(&org, &email, password_hash, role, now)).await?;
        }
        tx.commit().await?;
        self.user_by_email(&email)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Locks a user out until they follow a fresh link: the password is cleared, every session
    /// ends, and a new invite for the same address and role is recorded. Returns the e-mail.
    pub async fn reset_user_access(
        &self,
        org: &OrgId,
        user_id: &str,
        token_digest: &str,
        expires_at: i64,
    ) -> Result<User, StoreError> {
        let user = self.org_user(org, user_id).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE org_id = $2 AND id = $3")
            .bind(NO_PASSWORD)
            .bind(org.as_str())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Earlier links for the address go in the same transaction as the new one.
        self.insert_invite(org, &user.email, user.role, token_digest, expires_at)
            .await?;
        Ok(user)
    }

    /// Removes a login, its sessions and every unused link for its address in this
    /// organization (an earlier reset link must not bring it back). Never the organization's
    /// last owner — also when two owners remove each other at the same moment: the count and
    /// the delete share one transaction, which holds the organization's row.
    pub async fn remove_user(&self, org: &OrgId, user_id: &str) -> Result<User, StoreError> {
        let mut tx = self.begin_write().await?;
        // A no-op UPDATE takes the organization's row lock on PostgreSQL (SQLite's writer lock
        // is already held): concurrent removals in one organization queue here.
        sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.org_id = $1 AND u.id = $2"
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
                "SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'",
            )
            .bind(org.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if owners <= 1 {
                return Err(Conflict::LastOwner.into());
            }
        }
        sqlx::query("DELETE FROM users WHERE org_id = $1 AND id = $2")
            .bind(org.as_str())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        revoke_pending(&mut tx, org, &user.email).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn org_user(&self, org: &OrgId, user_id: &str) -> Result<User, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.org_id = $1 AND u.id = $2"
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
