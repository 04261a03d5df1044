//! Leads: the four capture steps, their fields, and the rule that a lead only moves forward.

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::parse_display_name;
use super::user::Email;

/// How a lead entered leadtrail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    /// A homeowner, through the embedded widget.
    #[default]
    Widget,
    /// The business, through the API (a phone call, a walk-in).
    Api,
    /// An import of earlier leads.
    Import,
}

impl RecordSource {
    pub fn id(self) -> &'static str {
        match self {
            Self::Widget => "widget",
            Self::Api => "api",
            Self::Import => "import",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        [Self::Widget, Self::Api, Self::Import]
            .into_iter()
            .find(|r| r.id() == id)
    }
}

/// Where a lead is in the widget's flow. Ordered: a lead only ever moves to a later status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    AddressInfoProvided,
    ProjectDetailsProvided,
    PersonalInfoAndEstimateProvided,
    ContactInfoProvided,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 4] = [
        Self::AddressInfoProvided,
        Self::ProjectDetailsProvided,
        Self::PersonalInfoAndEstimateProvided,
        Self::ContactInfoProvided,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::AddressInfoProvided => "address_info_provided",
            Self::ProjectDetailsProvided => "project_details_provided",
            Self::PersonalInfoAndEstimateProvided => "personal_info_and_estimate_provided",
            Self::ContactInfoProvided => "contact_info_provided",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn step(self) -> u8 {
        match self {
            Self::AddressInfoProvided => 1,
            Self::ProjectDetailsProvided => 2,
            Self::PersonalInfoAndEstimateProvided => 3,
            Self::ContactInfoProvided => 4,
        }
    }
}

/// Step 1: the property. Nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
}

fn text(field: &'static str, raw: &str, max: usize) -> Result<String, DomainError> {
    parse_display_name(field, raw, max)
}

fn one_of<'a>(field: &'static str, raw: &str, allowed: &[&'a str]) -> Result<&'a str, DomainError> {
    allowed.iter().copied().find(|a| *a == raw).ok_or_else(|| {
        DomainError::new(
            field,
            format!("{field} must be one of: {}", allowed.join(", ")),
        )
    })
}

impl Address {
    pub fn parse(
        street: &str,
        city: &str,
        state: &str,
        postal_code: &str,
        country: Option<&str>,
    ) -> Result<Self, DomainError> {
        let country = country.unwrap_or("US").trim().to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DomainError::new(
                "address.country",
                "country must be a two-letter code like US",
            ));
        }
        let postal = postal_code.trim().to_ascii_uppercase();
        let postal_ok = if country == "US" {
            let b = postal.as_bytes();
            (b.len() == 5 && b.iter().all(u8::is_ascii_digit))
                || (b.len() == 10
                    && b[5] == b'-'
                    && b[..5].iter().chain(&b[6..]).all(u8::is_ascii_digit))
        } else {
            (3..=10).contains(&postal.len())
                && postal
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
        };
        if !postal_ok {
            return Err(DomainError::new(
                "address.postal_code",
                "postal_code is not a valid postal code (US: 12345 or 12345-6789)",
            ));
        }
        Ok(Self {
            street: text("address.street", street, 200)?,
            city: text("address.city", city, 100)?,
            state: text("address.state", state, 50)?,
            postal_code: postal,
            country,
        })
    }
}

/// Step 2: the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDetails {
    pub roof_type: String,
    pub material: String,
    pub stories: u8,
    pub pitch: String,
    pub urgency: String,
    pub roof_age_years: Option<u16>,
    pub insurance_claim: Option<bool>,
    pub financing_interest: Option<bool>,
}

pub const ROOF_TYPES: [&str; 4] = ["replacement", "repair", "new_construction", "inspection"];
pub const MATERIALS: [&str; 7] = [
    "asphalt_shingle",
    "metal",
    "tile",
    "slate",
    "flat",
    "wood_shake",
    "unknown",
];
pub const PITCHES: [&str; 5] = ["flat", "low", "medium", "steep", "unknown"];
pub const URGENCIES: [&str; 5] = [
    "emergency",
    "within_1_month",
    "within_3_months",
    "within_6_months",
    "researching",
];

pub struct ProjectInput<'a> {
    pub roof_type: &'a str,
    pub material: &'a str,
    pub stories: i64,
    pub pitch: Option<&'a str>,
    pub urgency: &'a str,
    pub roof_age_years: Option<i64>,
    pub insurance_claim: Option<bool>,
    pub financing_interest: Option<bool>,
}

impl ProjectDetails {
    pub fn parse(input: ProjectInput<'_>) -> Result<Self, DomainError> {
        if !(1..=4).contains(&input.stories) {
            return Err(DomainError::new("stories", "stories must be 1 to 4"));
        }
        let roof_age_years = match input.roof_age_years {
            None => None,
            Some(age @ 0..=150) => u16::try_from(age).ok(),
            Some(_) => {
                return Err(DomainError::new(
                    "roof_age_years",
                    "roof_age_years must be 0 to 150",
                ));
            }
        };
        Ok(Self {
            roof_type: one_of("roof_type", input.roof_type, &ROOF_TYPES)?.to_owned(),
            material: one_of("material", input.material, &MATERIALS)?.to_owned(),
            stories: u8::try_from(input.stories).unwrap_or(1),
            pitch: one_of("pitch", input.pitch.unwrap_or("unknown"), &PITCHES)?.to_owned(),
            urgency: one_of("urgency", input.urgency, &URGENCIES)?.to_owned(),
            roof_age_years,
            insurance_claim: input.insurance_claim,
            financing_interest: input.financing_interest,
        })
    }
}

/// Step 3: the homeowner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalInfo {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub owner_occupied: bool,
    pub home_sqft: Option<u32>,
}

impl PersonalInfo {
    pub fn parse(
        first_name: &str,
        last_name: &str,
        email: &str,
        phone: &str,
        owner_occupied: bool,
        home_sqft: Option<i64>,
    ) -> Result<Self, DomainError> {
        let home_sqft = match home_sqft {
            None => None,
            Some(sqft @ 300..=20_000) => u32::try_from(sqft).ok(),
            Some(_) => {
                return Err(DomainError::new(
                    "home_sqft",
                    "home_sqft must be 300 to 20000",
                ));
            }
        };
        Ok(Self {
            first_name: text("first_name", first_name, 50)?,
            last_name: text("last_name", last_name, 50)?,
            email: Email::parse("email", email)?.as_str().to_owned(),
            phone: parse_phone(phone)?,
            owner_occupied,
            home_sqft,
        })
    }
}

/// Keeps a leading `+` and the digits; 10–15 digits (E.164 allows 15; US numbers have 10).
pub fn parse_phone(raw: &str) -> Result<String, DomainError> {
    let raw = raw.trim();
    let allowed = |c: char| c.is_ascii_digit() || " +-().".contains(c);
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let plus = raw.starts_with('+');
    if !raw.chars().all(allowed)
        || !(10..=15).contains(&digits.len())
        || raw.chars().skip(1).any(|c| c == '+')
    {
        return Err(DomainError::new(
            "phone",
            "phone must be 10 to 15 digits, optionally with +, spaces, dashes or parentheses",
        ));
    }
    Ok(if plus { format!("+{digits}") } else { digits })
}

/// Step 4 (optional): how and when to call back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPreference {
    pub contact_method: String,
    pub contact_time: String,
}

pub const CONTACT_METHODS: [&str; 3] = ["phone", "email", "text"];
pub const CONTACT_TIMES: [&str; 4] = ["morning", "afternoon", "evening", "anytime"];

impl ContactPreference {
    pub fn parse(method: &str, time: &str) -> Result<Self, DomainError> {
        Ok(Self {
            contact_method: one_of("contact_method", method, &CONTACT_METHODS)?.to_owned(),
            contact_time: one_of("contact_time", time, &CONTACT_TIMES)?.to_owned(),
        })
    }
}

/// A step request after creation, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    ProjectDetails(ProjectDetails),
    PersonalInfo(PersonalInfo),
    ContactPreference(ContactPreference),
}

impl Step {
    /// The status the lead has once this step is stored.
    pub fn status(&self) -> LeadStatus {
        match self {
            Self::ProjectDetails(_) => LeadStatus::ProjectDetailsProvided,
            Self::PersonalInfo(_) => LeadStatus::PersonalInfoAndEstimateProvided,
            Self::ContactPreference(_) => LeadStatus::ContactInfoProvided,
        }
    }
}

/// Steps come in order: each needs the one before it, and none can be done twice.
pub fn check_step_order(current: LeadStatus, step: &Step) -> Result<(), DomainError> {
    let next = step.status();
    if next.step() == current.step() + 1 {
        return Ok(());
    }
    let message = if next <= current {
        format!(
            "this lead is already at {}; a lead only moves forward",
            current.id()
        )
    } else {
        format!("this lead is at {}; send the steps in order", current.id())
    };
    Err(DomainError::new("step", message))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn project() -> ProjectDetails {
        ProjectDetails::parse(ProjectInput {
            roof_type: "replacement",
            material: "metal",
            stories: 2,
            pitch: None,
            urgency: "emergency",
            roof_age_years: Some(22),
            insurance_claim: None,
            financing_interest: Some(true),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn us_postal_codes_are_five_digits_or_zip_plus_four() {
        assert!(Address::parse("1 Main St", "Austin", "TX", "78701", None).is_ok());
        assert!(Address::parse("1 Main St", "Austin", "TX", "78701-1234", None).is_ok());
        for bad in ["7870", "787011", "ABCDE", "78701-12"] {
            assert!(
                Address::parse("1 Main St", "Austin", "TX", bad, None).is_err(),
                "{bad}"
            );
        }
        assert!(
            Address::parse(
                "1 High St",
                "Leeds",
                "West Yorkshire",
                "LS1 4AP",
                Some("gb")
            )
            .is_ok()
        );
    }

    #[test]
    fn phone_numbers_keep_digits_and_a_leading_plus() {
        assert_eq!(
            parse_phone("(512) 555-0100").ok().as_deref(),
            Some("5125550100")
        );
        assert_eq!(
            parse_phone("+1 512 555 0100").ok().as_deref(),
            Some("+15125550100")
        );
        for bad in [
            "555-0100",
            "call me",
            "512555010O",
            "1+5125550100",
            "+1234567890123456",
        ] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn steps_only_move_forward_and_in_order() {
        let step2 = Step::ProjectDetails(project());
        assert!(check_step_order(LeadStatus::AddressInfoProvided, &step2).is_ok());
        assert!(check_step_order(LeadStatus::ProjectDetailsProvided, &step2).is_err());
        let step4 = Step::ContactPreference(
            ContactPreference::parse("phone", "morning").unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(check_step_order(LeadStatus::AddressInfoProvided, &step4).is_err());
        assert!(check_step_order(LeadStatus::PersonalInfoAndEstimateProvided, &step4).is_ok());
        assert!(check_step_order(LeadStatus::ContactInfoProvided, &step4).is_err());
    }

    #[test]
    fn project_details_refuse_unknown_choices_with_the_list() {
        let err = ProjectDetails::parse(ProjectInput {
            roof_type: "demolition",
            material: "metal",
            stories: 1,
            pitch: None,
            urgency: "emergency",
            roof_age_years: None,
            insurance_claim: None,
            financing_interest: None,
        })
        .err();
        assert!(err.is_some_and(|e| e.field == "roof_type" && e.message.contains("repair")));
    }
}
