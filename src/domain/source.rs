//! Lead sources: per-widget marketing channels, each with a code that never changes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::channel::ChannelCategory;
use super::error::parse_display_name;

/// Active sources a widget may have, the system source included.
pub const MAX_ACTIVE_SOURCES: u32 = 10;

/// The built-in catch-all every widget starts with.
pub const SYSTEM_SOURCE_NAME: &str = "Website";
pub const SYSTEM_SOURCE_CATEGORY: ChannelCategory = ChannelCategory::Website;

/// A source's number within its widget. Shown as `SRC-02`, sent in URLs and payloads as `"02"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceCode(u32);

impl SourceCode {
    pub const SYSTEM: SourceCode = SourceCode(1);

    pub fn new(n: u32) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    /// Accepts `02`, `2` and `SRC-02` (what people copy from the dashboard).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let digits = raw
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("SRC-"))
            .map_or(raw, |_| &raw[4..]);
        if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().and_then(Self::new)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn is_system(self) -> bool {
        self == Self::SYSTEM
    }

    /// `SRC-02`, as the dashboard shows it.
    pub fn display_code(self) -> String {
        format!("SRC-{self}")
    }
}

/// `02`: two digits, three from 100 on.
impl fmt::Display for SourceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// A custom source's name: 1–50 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceName(String);

impl SourceName {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_display_name("name", raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two names are compared in for uniqueness: Unicode-aware lower case, so
    /// "FACEBOOK ADS", "facebook ads" and "Ärzte"/"ärzte" collide as people expect.
    pub fn uniqueness_key(&self) -> String {
        self.0.to_lowercase()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    Active,
    Archived,
}

impl SourceStatus {
    pub fn id(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        match id {
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }
}

/// Why the system source refuses a change; the same sentence in the API and the dashboard.
pub fn system_source_is_immutable() -> DomainError {
    DomainError::new(
        "code",
        "the system source SRC-01 (Website) cannot be renamed, re-categorised or archived",
    )
}

pub fn source_limit_message() -> String {
    format!(
        "this widget already has {MAX_ACTIVE_SOURCES} active sources (the system source included); \
         archive one to add or restore another"
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn source_codes_display_as_src_and_two_digits() {
        assert_eq!(SourceCode::SYSTEM.display_code(), "SRC-01");
        assert_eq!(
            SourceCode::new(2).map(|c| c.to_string()).as_deref(),
            Some("02")
        );
        assert_eq!(
            SourceCode::new(100).map(|c| c.to_string()).as_deref(),
            Some("100")
        );
    }

    #[test]
    fn source_code_parses_the_forms_people_paste() {
        assert_eq!(SourceCode::parse("SRC-02"), SourceCode::new(2));
        assert_eq!(SourceCode::parse("src-2"), SourceCode::new(2));
        assert_eq!(SourceCode::parse("02"), SourceCode::new(2));
        for bad in ["", "SRC-", "0", "SRC-0", "2a", "+2", " ", "Ä"] {
            assert_eq!(SourceCode::parse(bad), None, "{bad:?} parsed");
        }
    }

    #[test]
    fn source_name_of_fifty_characters_is_accepted_and_fifty_one_refused() {
        assert!(SourceName::parse(&"a".repeat(50)).is_ok());
        assert!(SourceName::parse(&"a".repeat(51)).is_err());
    }

    #[test]
    fn source_name_length_counts_unicode_characters_not_bytes() {
        // 50 two-byte and 50 four-byte characters are still 50 characters.
        assert!(SourceName::parse(&"é".repeat(50)).is_ok());
        assert!(SourceName::parse(&"🏠".repeat(50)).is_ok());
        assert!(SourceName::parse(&"🏠".repeat(51)).is_err());
    }

    #[test]
    fn source_name_is_trimmed_and_blank_names_are_refused() {
        assert_eq!(
            SourceName::parse("  Facebook Ads  ").map(|n| n.as_str().to_owned()),
            Ok("Facebook Ads".to_owned())
        );
        assert!(SourceName::parse("   ").is_err());
    }

    #[test]
    fn source_name_with_control_characters_is_refused() {
        for bad in [
            "Face\nbook",
            "Tab\tName",
            "Bell\u{7}",
            "Del\u{7f}",
            "C1\u{85}mid",
        ] {
            assert!(SourceName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn source_name_uniqueness_ignores_case_across_scripts() {
        let a = SourceName::parse("ÄRZTE Ads").map(|n| n.uniqueness_key());
        let b = SourceName::parse("ärzte ads").map(|n| n.uniqueness_key());
        assert_eq!(a, b);
    }

    proptest! {
        #[test]
        fn every_source_code_formats_and_parses_back(n in 1u32..=999_999) {
            let code = SourceCode::new(n).ok_or_else(|| TestCaseError::fail("code"))?;
            prop_assert_eq!(SourceCode::parse(&code.to_string()), Some(code));
            prop_assert_eq!(SourceCode::parse(&code.display_code()), Some(code));
            prop_assert!(code.to_string().len() >= 2);
        }

        #[test]
        fn any_parsed_source_name_is_within_the_rules(raw in "\\PC{0,60}") {
            if let Ok(name) = SourceName::parse(&raw) {
                let n = name.as_str().chars().count();
                prop_assert!((1..=50).contains(&n));
                prop_assert!(!name.as_str().chars().any(char::is_control));
                prop_assert_eq!(name.as_str().trim(), name.as_str());
            }
        }
    }
}
