//! "How did you hear about us?": the question a widget may ask in step 3, and the answer kept
//! beside the tracked source (never instead of it). The lead-source guide recommends asking it
//! as a fallback for when tracking is missing.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// The free-text choice; its text is at most `OTHER_MAX` characters.
pub const OTHER: &str = "Other";
pub const OTHER_MAX: usize = 50;
const CHOICE_MAX: usize = 50;
const CHOICES_MAX: usize = 12;

/// Choices a home-services business hears most, in the order a homeowner thinks of them.
pub const DEFAULT_CHOICES: [&str; 8] = [
    "Google search",
    "Facebook or Instagram",
    "Yard sign",
    "Truck or vehicle",
    "Mailer or postcard",
    "Friend, family or neighbor",
    "Nextdoor",
    "Home show or event",
];

/// A widget's question: asked or not, and its choices ("Other" is always offered last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SelfReportSetting {
    pub enabled: bool,
    pub choices: Vec<String>,
}

impl Default for SelfReportSetting {
    fn default() -> Self {
        Self {
            enabled: false,
            choices: DEFAULT_CHOICES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

impl SelfReportSetting {
    /// Choices trimmed, non-empty, unique ignoring case, at most 12 of at most 50 characters;
    /// "Other" is implied and may not be listed.
    pub fn parse(enabled: bool, choices: &[String]) -> Result<Self, DomainError> {
        let field = "choices";
        let mut kept: Vec<String> = Vec::new();
        for raw in choices {
            let choice = raw.trim();
            if choice.is_empty() {
                continue;
            }
            if choice.chars().count() > CHOICE_MAX || choice.chars().any(char::is_control) {
                return Err(DomainError::new(
                    field,
                    format!("each choice is 1 to {CHOICE_MAX} characters of text"),
                ));
            }
            if choice.eq_ignore_ascii_case(OTHER) {
                return Err(DomainError::new(
                    field,
                    "\"Other\" (with a text box) is always offered; do not list it",
                ));
            }
            if kept
                .iter()
                .any(|k| k.to_lowercase() == choice.to_lowercase())
            {
                return Err(DomainError::new(
                    field,
                    format!("{choice:?} is listed twice"),
                ));
            }
            kept.push(choice.to_owned());
        }
        if kept.len() > CHOICES_MAX {
            return Err(DomainError::new(
                field,
                format!("at most {CHOICES_MAX} choices"),
            ));
        }
        if enabled && kept.is_empty() {
            return Err(DomainError::new(field, "name at least one choice"));
        }
        Ok(Self {
            enabled,
            choices: kept,
        })
    }

    /// The homeowner's answer, checked against this widget's choices.
    pub fn answer(&self, choice: &str, other: Option<&str>) -> Result<SelfReported, DomainError> {
        let field = "heard_about";
        if !self.enabled {
            return Err(DomainError::new(field, "this widget does not ask"));
        }
        if choice == OTHER {
            let text = other.map(str::trim).unwrap_or_default();
            if text.chars().count() > OTHER_MAX || text.chars().any(char::is_control) {
                return Err(DomainError::new(
                    field,
                    format!("tell us in at most {OTHER_MAX} characters"),
                ));
            }
            return Ok(SelfReported {
                choice: OTHER.to_owned(),
                other: (!text.is_empty()).then(|| text.to_owned()),
            });
        }
        if self.choices.iter().any(|c| c == choice) {
            Ok(SelfReported {
                choice: choice.to_owned(),
                other: None,
            })
        } else {
            Err(DomainError::new(
                field,
                format!("{choice:?} is not one of this widget's choices"),
            ))
        }
    }
}

/// What the homeowner answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SelfReported {
    pub choice: String,
    /// With "Other": what they wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(choices: &[&str]) -> Result<SelfReportSetting, DomainError> {
        let owned: Vec<String> = choices.iter().map(|c| (*c).to_owned()).collect();
        SelfReportSetting::parse(true, &owned)
    }

    #[test]
    fn choices_are_trimmed_unique_and_bounded() {
        let s = setting(&[" Yard sign ", "", "Radio"]).unwrap_or_default();
        assert_eq!(s.choices, vec!["Yard sign", "Radio"]);
        assert!(setting(&["Radio", "radio"]).is_err());
        assert!(setting(&["other"]).is_err());
        assert!(setting(&[&"x".repeat(51)]).is_err());
        assert!(setting(&[]).is_err(), "asking needs a choice");
        let thirteen: Vec<String> = (0..13).map(|i| format!("c{i}")).collect();
        assert!(SelfReportSetting::parse(true, &thirteen).is_err());
        assert!(
            SelfReportSetting::parse(false, &[]).is_ok(),
            "off may be empty"
        );
    }

    #[test]
    fn answers_are_a_listed_choice_or_other_with_short_text() {
        let s = setting(&["Yard sign", "Radio"]).unwrap_or_default();
        assert_eq!(
            s.answer("Radio", None).ok(),
            Some(SelfReported {
                choice: "Radio".into(),
                other: None
            })
        );
        assert_eq!(
            s.answer("Other", Some(" the church bulletin ")).ok(),
            Some(SelfReported {
                choice: "Other".into(),
                other: Some("the church bulletin".into())
            })
        );
        assert!(s.answer("Billboard", None).is_err());
        assert!(s.answer("Other", Some(&"x".repeat(51))).is_err());
        let off = SelfReportSetting::default();
        assert!(off.answer("Google search", None).is_err());
    }
}
