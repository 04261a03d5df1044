//! Erasure of one homeowner's personal data: which values are personal, and how every stored
//! copy of them (event payloads, delivery bodies, receivers' replies, saved answers) is
//! scrubbed while everything else in those documents stays as it was.

use serde_json::Value;

use super::DomainError;
use super::lead::{Address, PersonalInfo};
use super::self_report::SelfReported;

/// What an erased value becomes wherever it was stored.
pub const ERASED: &str = "[erased]";

/// Values shorter than this are only erased where they are a whole field: a two-letter name
/// replaced inside every other string would mangle unrelated text.
const MIN_EMBEDDED: usize = 4;

/// The personal values of one lead, to find and replace in every stored copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrubber {
    values: Vec<String>,
}

impl Scrubber {
    /// The lead's name, e-mail, phone, street and free-text answer (the ones that are set).
    pub fn for_lead(
        personal: Option<&PersonalInfo>,
        address: &Address,
        self_reported: Option<&SelfReported>,
    ) -> Self {
        let mut values: Vec<String> = Vec::new();
        if let Some(p) = personal {
            values.extend([
                p.first_name.clone(),
                p.last_name.clone(),
                p.email.clone(),
                p.phone.clone(),
            ]);
            // "Ann Lee" as one string is as personal as its parts.
            values.push(format!("{} {}", p.first_name, p.last_name));
        }
        values.push(address.street.clone());
        if let Some(other) = self_reported.and_then(|s| s.other.clone()) {
            values.push(other);
        }
        values.retain(|v| !v.trim().is_empty() && v != ERASED);
        // Longest first, so "Ann Lee" goes whole before "Ann" could split it.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every personal value replaced (ASCII letters in any case), or `None` when
    /// it holds none.
    pub fn text(&self, text: &str) -> Option<String> {
        let mut out = text.to_owned();
        let mut changed = false;
        for value in &self.values {
            if out.eq_ignore_ascii_case(value) {
                return Some(ERASED.to_owned());
            }
            if value.len() < MIN_EMBEDDED {
                continue;
            }
            if let Some(replaced) = replace_ignoring_ascii_case(&out, value) {
                out = replaced;
                changed = true;
            }
        }
        changed.then_some(out)
    }

    /// A stored JSON document with every personal value in its strings (keys too) replaced;
    /// `None` when it holds none. A document that is not JSON is scrubbed as text.
    pub fn json(&self, document: &str) -> Option<String> {
        let Ok(mut value) = serde_json::from_str::<Value>(document) else {
            return self.text(document);
        };
        self.scrub_value(&mut value).then(|| value.to_string())
    }

    fn scrub_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => match self.text(s) {
                Some(scrubbed) => {
                    *s = scrubbed;
                    true
                }
                None => false,
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.scrub_value(item) | changed),
            Value::Object(map) => {
                let mut changed = false;
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if let Some(mut inner) = map.remove(&key) {
                        changed |= self.scrub_value(&mut inner);
                        let key = match self.text(&key) {
                            Some(scrubbed) => {
                                changed = true;
                                scrubbed
                            }
                            None => key,
                        };
                        map.insert(key, inner);
                    }
                }
                changed
            }
            _ => false,
        }
    }
}

/// `haystack` with every occurrence of `needle` (ASCII letters in any case) replaced by
/// [`ERASED`]; `None` when there is none. ASCII case folding keeps byte offsets, so positions
/// found in the folded copy are positions in the original.
fn replace_ignoring_ascii_case(haystack: &str, needle: &str) -> Option<String> {
    let folded = haystack.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(haystack.len());
    let mut last = 0;
    for (at, _) in folded.match_indices(&needle) {
        out.push_str(&haystack[last..at]);
        out.push_str(ERASED);
        last = at + needle.len();
    }
    if last == 0 {
        return None;
    }
    out.push_str(&haystack[last..]);
    Some(out)
}

/// The personal fields of a lead after erasure: blank where they identified the homeowner,
/// kept where they only describe the job (owner-occupied, home size).
pub fn erased_personal(personal: &PersonalInfo) -> PersonalInfo {
    PersonalInfo {
        first_name: String::new(),
        last_name: String::new(),
        email: String::new(),
        phone: String::new(),
        ..personal.clone()
    }
}

/// The address after erasure: the street goes, the area (city, state, postal code) stays, as
/// reports and estimates read it.
pub fn erased_address(address: &Address) -> Address {
    Address {
        street: String::new(),
        ..address.clone()
    }
}

/// How long raw request data (a lead's raw arrival parameters and visitor id, a visit's page,
/// referrer and visitor id) is kept: 30 days to 10 years. Counts, attribution and touches
/// are kept regardless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub const MIN: u32 = 30;
    pub const MAX: u32 = 3_650;

    pub fn parse(days: i64) -> Result<Self, DomainError> {
        match u32::try_from(days) {
            Ok(d) if (Self::MIN..=Self::MAX).contains(&d) => Ok(Self(d)),
            _ => Err(DomainError::new(
                "raw_data_retention_days",
                format!(
                    "raw_data_retention_days must be {} to {} (or null to keep raw data)",
                    Self::MIN,
                    Self::MAX
                ),
            )),
        }
    }

    pub fn days(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Scrubber {
        let personal = PersonalInfo {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            email: "ann.lee@example.com".into(),
            phone: "(512) 555-0100".into(),
            owner_occupied: true,
            home_sqft: Some(1_800),
        };
        let address = Address {
            street: "12 Elm St".into(),
            city: "Austin".into(),
            state: "TX".into(),
            postal_code: "78701".into(),
            country: "US".into(),
        };
        let said = SelfReported {
            choice: "Other".into(),
            other: Some("my neighbour Bob Smith".into()),
        };
        Scrubber::for_lead(Some(&personal), &address, Some(&said))
    }

    #[test]
    fn every_personal_value_goes_from_a_document_and_the_rest_stays() {
        let doc = r#"{"type":"lead.enriched","data":{"lead_id":"lead_1","personal":{"first_name":"Ann","last_name":"Lee","email":"ANN.LEE@example.com","phone":"(512) 555-0100"},"address":{"street":"12 Elm St","city":"Austin"},"note":"call Ann Lee at (512) 555-0100","heard":"my neighbour Bob Smith","score":72,"tags":["Ann"]}}"#;
        let out = ann().json(doc).expect("it held personal data");
        for gone in ["Ann", "Lee", "ann.lee", "555-0100", "Elm", "Bob Smith"] {
            assert!(!out.contains(gone), "{gone} survived: {out}");
        }
        let v: Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(v["data"]["lead_id"], "lead_1");
        assert_eq!(v["data"]["address"]["city"], "Austin");
        assert_eq!(v["data"]["score"], 72);
        assert_eq!(v["data"]["note"], "call [erased] at [erased]");
        assert_eq!(v["data"]["tags"][0], ERASED);
    }

    #[test]
    fn a_document_without_personal_data_is_left_alone() {
        assert_eq!(ann().json(r#"{"lead_id":"lead_1","city":"Austin"}"#), None);
        assert_eq!(ann().text("receiver said OK"), None);
    }

    #[test]
    fn short_values_go_only_where_they_are_the_whole_field() {
        // "Lee" inside "Leeds" is not the homeowner.
        assert_eq!(ann().text("Leeds"), None);
        assert_eq!(ann().text("lee").as_deref(), Some(ERASED));
    }

    #[test]
    fn text_that_is_not_json_is_scrubbed_as_text() {
        assert_eq!(
            ann().json("got ann.lee@example.com, thanks").as_deref(),
            Some("got [erased], thanks")
        );
    }

    #[test]
    fn retention_is_a_month_to_ten_years() {
        assert!(RetentionDays::parse(29).is_err());
        assert!(RetentionDays::parse(3_651).is_err());
        assert!(RetentionDays::parse(-1).is_err());
        assert_eq!(RetentionDays::parse(30).map(RetentionDays::days), Ok(30));
        assert_eq!(
            RetentionDays::parse(3_650).map(RetentionDays::days),
            Ok(3_650)
        );
    }

    #[test]
    fn erasure_keeps_what_describes_the_job() {
        let p = PersonalInfo {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            email: "a@example.com".into(),
            phone: "5125550100".into(),
            owner_occupied: false,
            home_sqft: Some(2_400),
        };
        let e = erased_personal(&p);
        assert!(e.first_name.is_empty() && e.email.is_empty() && e.phone.is_empty());
        assert!(!e.owner_occupied);
        assert_eq!(e.home_sqft, Some(2_400));
    }
}
