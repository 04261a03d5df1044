//! Dashboard users: e-mail addresses, passwords (argon2) and roles.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

use super::DomainError;

/// A login e-mail address, lower-cased. Deliberately shallow: the only real test of an
/// address is mail reaching it; this catches typos and junk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        let invalid = || DomainError::new(field, format!("{field} is not a valid e-mail address"));
        if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(raw.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const MIN_PASSWORD_CHARS: usize = 10;

/// Hashes a new password with argon2id; refuses ones too short to resist guessing.
pub fn hash_password(field: &'static str, plain: &str) -> Result<String, DomainError> {
    let chars = plain.chars().count();
    if !(MIN_PASSWORD_CHARS..=256).contains(&chars) {
        return Err(DomainError::new(
            field,
            format!("{field} must be {MIN_PASSWORD_CHARS} to 256 characters"),
        ));
    }
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| DomainError::new(field, format!("password could not be hashed: {e}")))?;
    Argon2::default()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::new(field, format!("password could not be hashed: {e}")))
}

pub fn verify_password(plain: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(plain.as_bytes(), &parsed)
            .is_ok()
    })
}

/// What a dashboard user may do. Checked on the server for every change; the pages only hide
/// controls to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything a member can, plus the team: invites, access resets, removals.
    Owner,
    /// Changes sources, widgets, webhooks and settings.
    Member,
    /// Reads everything, changes nothing.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Member, Role::Viewer];

    pub fn id(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Owner => "Owner",
            Self::Member => "Member",
            Self::Viewer => "Viewer",
        }
    }

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|r| r.id() == raw.trim())
            .ok_or_else(|| DomainError::new(field, "role must be owner, member or viewer"))
    }

    pub fn can_edit(self) -> bool {
        matches!(self, Self::Owner | Self::Member)
    }

    pub fn manages_team(self) -> bool {
        self == Self::Owner
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_owners_and_members_edit_and_only_owners_manage_the_team() {
        assert!(Role::Owner.can_edit() && Role::Owner.manages_team());
        assert!(Role::Member.can_edit() && !Role::Member.manages_team());
        assert!(!Role::Viewer.can_edit() && !Role::Viewer.manages_team());
        assert_eq!(Role::parse("role", "viewer"), Ok(Role::Viewer));
        assert!(Role::parse("role", "admin").is_err());
    }
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_junk_refused() {
        assert_eq!(
            Email::parse("email", " Owner@Acme.Example ").map(|e| e.as_str().to_owned()),
            Ok("owner@acme.example".to_owned())
        );
        for bad in [
            "owner",
            "@acme.example",
            "owner@",
            "owner@acme",
            "a b@acme.example",
            "o@.x",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_hash_and_verify_and_short_ones_are_refused() {
        assert!(hash_password("password", "short").is_err());
        let hash = hash_password("password", "correct horse battery").unwrap_or_default();
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
    }
}
