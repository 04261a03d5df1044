//! Widgets: an organization's lead-capture embeds, numbered `01`, `02`, … and never renumbered.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::error::parse_display_name;

/// A widget's two-digit version. `01` is the Primary widget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WidgetVersion(u32);

impl WidgetVersion {
    pub const PRIMARY: WidgetVersion = WidgetVersion(1);

    pub fn new(n: u32) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    /// Accepts the forms people paste: `01`, `1`, `v01`. Anything else is not a version.
    pub fn parse(raw: &str) -> Option<Self> {
        let digits = raw.trim().trim_start_matches(['v', 'V']);
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().and_then(Self::new)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn is_primary(self) -> bool {
        self == Self::PRIMARY
    }
}

impl fmt::Display for WidgetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetName(String);

impl WidgetName {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_display_name("name", raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WidgetStatus {
    NotConfigured,
    Configured,
    Archived,
}

impl WidgetStatus {
    pub fn id(self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Configured => "configured",
            Self::Archived => "archived",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        match id {
            "not_configured" => Some(Self::NotConfigured),
            "configured" => Some(Self::Configured),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::from_id(raw).ok_or_else(|| {
            DomainError::new(
                "status",
                format!("unknown status {raw:?}; expected not_configured, configured or archived"),
            )
        })
    }

    /// Archived widgets do not count against the tier and take no new leads of their own.
    pub fn is_live(self) -> bool {
        self != Self::Archived
    }
}

/// What changing a widget's status means, decided before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// Same status: nothing to write, no event.
    Unchanged,
    /// A move between live states, or into the archive.
    Move,
    /// Out of the archive: takes a tier slot again, so the limit must be checked.
    Revive,
}

/// The Primary widget is where untagged traffic lands, so it can never be archived.
pub fn plan_status_change(
    version: WidgetVersion,
    from: WidgetStatus,
    to: WidgetStatus,
) -> Result<StatusChange, DomainError> {
    if from == to {
        return Ok(StatusChange::Unchanged);
    }
    if version.is_primary() && to != WidgetStatus::Configured {
        return Err(DomainError::new(
            "status",
            "the Primary widget (01) is always configured: it can be neither archived nor set back to not configured",
        ));
    }
    if from == WidgetStatus::Archived {
        return Ok(StatusChange::Revive);
    }
    Ok(StatusChange::Move)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widget_versions_print_with_two_digits() {
        assert_eq!(WidgetVersion::PRIMARY.to_string(), "01");
        assert_eq!(
            WidgetVersion::new(12).map(|v| v.to_string()).as_deref(),
            Some("12")
        );
        assert_eq!(
            WidgetVersion::new(123).map(|v| v.to_string()).as_deref(),
            Some("123")
        );
    }

    #[test]
    fn widget_version_parses_pasted_forms() {
        assert_eq!(WidgetVersion::parse("02"), WidgetVersion::new(2));
        assert_eq!(WidgetVersion::parse("v2"), WidgetVersion::new(2));
        assert_eq!(WidgetVersion::parse("00"), None);
        assert_eq!(WidgetVersion::parse("-1"), None);
        assert_eq!(WidgetVersion::parse("1e3"), None);
    }

    #[test]
    fn primary_widget_is_always_configured() {
        for to in [WidgetStatus::Archived, WidgetStatus::NotConfigured] {
            let change = plan_status_change(WidgetVersion::PRIMARY, WidgetStatus::Configured, to);
            assert!(change.is_err(), "{to:?}");
        }
        assert_eq!(
            plan_status_change(
                WidgetVersion::PRIMARY,
                WidgetStatus::Configured,
                WidgetStatus::Configured
            ),
            Ok(StatusChange::Unchanged)
        );
    }

    #[test]
    fn leaving_the_archive_is_a_revival_that_counts_against_the_tier() {
        let v2 = WidgetVersion::new(2).unwrap_or(WidgetVersion::PRIMARY);
        assert_eq!(
            plan_status_change(v2, WidgetStatus::Archived, WidgetStatus::Configured),
            Ok(StatusChange::Revive)
        );
        assert_eq!(
            plan_status_change(v2, WidgetStatus::Configured, WidgetStatus::Configured),
            Ok(StatusChange::Unchanged)
        );
    }
}
