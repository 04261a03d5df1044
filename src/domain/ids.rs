//! Typed identifiers. Public ones print with a prefix so a pasted id says what it is.

use std::fmt;

use uuid::Uuid;

/// An organization (tenant). Every store call for tenant data takes one first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(String);

impl OrgId {
    pub const PREFIX: &'static str = "org_";

    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, Uuid::now_v7().simple()))
    }

    /// Wraps an id read back from our own store; input from outside goes through `parse`.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(Self::PREFIX)?;
        Uuid::try_parse(rest).ok()?;
        Some(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Generates a prefixed random id (`key_…`, `evt_…`) for rows that are referenced from outside.
pub fn prefixed_id(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::now_v7().simple())
}
