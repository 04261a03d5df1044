//! Reading a lead import: a CSV with the lead export's columns (any order, most optional),
//! one lead per line, checked line by line so a whole file is fixed in one go. The store
//! writes every line or none.

use std::collections::HashMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::DomainError;
use super::attribution::Utm;
use super::lead::{
    Address, ContactPreference, LeadStatus, PersonalInfo, ProjectDetails, ProjectInput,
};
use super::multi_touch::{MAX_TOUCHES, TouchPoint};
use super::outcome::Outcome;
use super::self_report::SelfReported;
use super::source::SourceCode;
use super::spend::RefusedLine;
use super::widget::WidgetVersion;

/// Lines one import may hold: a few years of a busy business, checked in one transaction.
pub const IMPORT_LEADS_MAX: usize = 50_000;

/// Columns every line needs.
pub const REQUIRED_COLUMNS: [&str; 7] = [
    "created_at",
    "widget_version",
    "source_code",
    "street",
    "city",
    "state",
    "postal_code",
];

/// Longest campaign tag, landing page or referrer kept.
const TAG_MAX: usize = 2_000;

/// One lead as the file gives it, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedLead {
    pub line: u64,
    /// When it originally arrived (Unix milliseconds).
    pub created_at: i64,
    pub widget: WidgetVersion,
    pub source: SourceCode,
    pub first_touch: Option<(WidgetVersion, SourceCode)>,
    /// The source a person credited the lead to instead (a correction), of the same widget.
    pub credited: Option<SourceCode>,
    /// The touches the models split the lead's credit over, oldest first, ending with the
    /// arrival (the export's `touches` column); the arrival alone when absent.
    pub touches: Vec<TouchPoint>,
    pub landing_page_url: Option<String>,
    pub referrer: Option<String>,
    pub utm: Utm,
    pub self_reported: Option<SelfReported>,
    pub address: Address,
    pub project: Option<ProjectDetails>,
    pub personal: Option<PersonalInfo>,
    pub contact: Option<ContactPreference>,
    pub outcome: Outcome,
    /// When the file says the lead's personal data was erased: it comes in erased.
    pub erased_at: Option<i64>,
}

impl ImportedLead {
    /// The furthest step the file's data reaches.
    pub fn status(&self) -> LeadStatus {
        match (&self.project, &self.personal, &self.contact) {
            (_, Some(_), Some(_)) => LeadStatus::ContactInfoProvided,
            (_, Some(_), None) => LeadStatus::PersonalInfoAndEstimateProvided,
            (Some(_), None, _) => LeadStatus::ProjectDetailsProvided,
            _ => LeadStatus::AddressInfoProvided,
        }
    }
}

/// An import as read: the leads that can be taken (if their widget and source exist) and the
/// lines that cannot, each with why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadImportFile {
    pub lines: Vec<ImportedLead>,
    pub refused: Vec<RefusedLine>,
}

fn refused(line: u64, reason: impl Into<String>) -> RefusedLine {
    RefusedLine {
        line,
        reason: reason.into(),
    }
}

/// A cell as the export wrote it: the apostrophe that kept a spreadsheet from running it as
/// a formula is taken off again.
fn cell_text(raw: &str) -> &str {
    match raw.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => raw,
    }
}

/// A time as RFC 3339 or a `YYYY-MM-DD` date (midnight UTC), in Unix milliseconds.
pub fn parse_time(field: &'static str, raw: &str) -> Result<i64, DomainError> {
    let parsed = OffsetDateTime::parse(raw, &Rfc3339).or_else(|_| {
        time::Date::parse(
            raw,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map(|d| d.midnight().assume_utc())
    });
    parsed
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .ok_or_else(|| {
            DomainError::new(
                field,
                format!("{field} must be an RFC 3339 time or YYYY-MM-DD"),
            )
        })
}

fn yes_no(field: &'static str, raw: &str) -> Result<Option<bool>, DomainError> {
    match raw.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "yes" | "y" | "1" => Ok(Some(true)),
        "false" | "no" | "n" | "0" => Ok(Some(false)),
        _ => Err(DomainError::new(
            field,
            format!("{field} must be true or false"),
        )),
    }
}

fn number(field: &'static str, raw: &str) -> Result<Option<i64>, DomainError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| DomainError::new(field, format!("{field} must be a whole number")))
}

fn tag(field: &'static str, raw: &str) -> Result<Option<String>, DomainError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.chars().count() > TAG_MAX || raw.chars().any(char::is_control) {
        return Err(DomainError::new(
            field,
            format!("{field} must be at most {TAG_MAX} characters of plain text"),
        ));
    }
    Ok(Some(raw.to_owned()))
}

/// One line's cells by column name.
struct Cells<'a> {
    get: &'a dyn Fn(&str) -> &'a str,
}

impl Cells<'_> {
    fn text(&self, name: &str) -> &str {
        cell_text((self.get)(name))
    }

    fn any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| !self.text(n).is_empty())
    }
}

fn read_line(c: &Cells<'_>, line: u64, now: i64) -> Result<ImportedLead, DomainError> {
    let created_at = parse_time("created_at", c.text("created_at"))?;
    if created_at > now {
        return Err(DomainError::new(
            "created_at",
            "created_at is in the future",
        ));
    }
    let widget = WidgetVersion::parse(c.text("widget_version"))
        .ok_or_else(|| DomainError::new("widget_version", "widget_version must be like 01"))?;
    let source = SourceCode::parse(c.text("source_code"))
        .ok_or_else(|| DomainError::new("source_code", "source_code must be like 02 or SRC-02"))?;
    let first_touch = match (
        c.text("first_touch_widget_version"),
        c.text("first_touch_source_code"),
    ) {
        ("", "") => None,
        (w, s) => Some((
            WidgetVersion::parse(w).ok_or_else(|| {
                DomainError::new(
                    "first_touch_widget_version",
                    "first_touch_widget_version must be like 01",
                )
            })?,
            SourceCode::parse(s).ok_or_else(|| {
                DomainError::new(
                    "first_touch_source_code",
                    "first_touch_source_code must be like 02",
                )
            })?,
        )),
    };
    let credited = match c.text("credited_source_code") {
        "" => None,
        code => Some(SourceCode::parse(code).ok_or_else(|| {
            DomainError::new(
                "credited_source_code",
                "credited_source_code must be like 02",
            )
        })?),
    };
    let touches: Vec<TouchPoint> = match c.text("touches") {
        "" => Vec::new(),
        json => serde_json::from_str(json).map_err(|_| {
            DomainError::new("touches", "touches must be the export's list of touches")
        })?,
    };
    if touches.len() > MAX_TOUCHES
        || touches.windows(2).any(|w| w[0].at > w[1].at)
        || touches.last().is_some_and(|t| t.at > created_at)
    {
        return Err(DomainError::new(
            "touches",
            format!("touches are at most {MAX_TOUCHES}, oldest first, none after created_at"),
        ));
    }
    let erased_at = match c.text("erased_at") {
        "" => None,
        at => Some(parse_time("erased_at", at)?),
    };
    // An erased lead's street and contact fields are blank: it comes in as it left.
    let address = {
        let street = match (erased_at, c.text("street")) {
            (Some(_), "") => "erased",
            (_, street) => street,
        };
        let country = Some(c.text("country")).filter(|v| !v.is_empty());
        let mut address = Address::parse(
            street,
            c.text("city"),
            c.text("state"),
            c.text("postal_code"),
            country,
        )?;
        if erased_at.is_some() && c.text("street").is_empty() {
            address.street.clear();
        }
        address
    };
    let project = if c.any(&["roof_type", "material", "stories", "urgency"]) {
        Some(ProjectDetails::parse(ProjectInput {
            roof_type: c.text("roof_type"),
            material: c.text("material"),
            stories: number("stories", c.text("stories"))?.unwrap_or(0),
            pitch: Some(c.text("pitch")).filter(|p| !p.is_empty()),
            urgency: c.text("urgency"),
            roof_age_years: number("roof_age_years", c.text("roof_age_years"))?,
            insurance_claim: yes_no("insurance_claim", c.text("insurance_claim"))?,
            financing_interest: yes_no("financing_interest", c.text("financing_interest"))?,
        })?)
    } else {
        None
    };
    let owner_occupied = yes_no("owner_occupied", c.text("owner_occupied"))?;
    let home_sqft = number("home_sqft", c.text("home_sqft"))?;
    let personal = if erased_at.is_some() {
        // Only what describes the job is left; the status says whether the step was taken.
        let status = LeadStatus::from_id(c.text("status"));
        (status >= Some(LeadStatus::PersonalInfoAndEstimateProvided)).then(|| PersonalInfo {
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            phone: String::new(),
            owner_occupied: owner_occupied.unwrap_or(true),
            home_sqft: home_sqft.and_then(|s| u32::try_from(s).ok()),
        })
    } else if c.any(&["first_name", "last_name", "email", "phone"]) {
        Some(PersonalInfo::parse(
            c.text("first_name"),
            c.text("last_name"),
            c.text("email"),
            c.text("phone"),
            owner_occupied.ok_or_else(|| {
                DomainError::new(
                    "owner_occupied",
                    "owner_occupied is needed with the contact details",
                )
            })?,
            home_sqft,
        )?)
    } else {
        None
    };
    let contact = if c.any(&["contact_method", "contact_time"]) {
        Some(ContactPreference::parse(
            c.text("contact_method"),
            c.text("contact_time"),
        )?)
    } else {
        None
    };
    if personal.is_some() && project.is_none() {
        return Err(DomainError::new(
            "roof_type",
            "contact details need the project details",
        ));
    }
    if contact.is_some() && personal.is_none() {
        return Err(DomainError::new(
            "contact_method",
            "a contact preference needs the contact details",
        ));
    }
    let outcome = Outcome::parse(
        Some(c.text("outcome"))
            .filter(|o| !o.is_empty())
            .unwrap_or("open"),
        number("outcome_value", c.text("outcome_value"))?,
        Some(c.text("lost_reason")).filter(|r| !r.is_empty()),
    )?;
    let self_reported = match (c.text("heard_about"), c.text("heard_about_other")) {
        ("", _) => None,
        (choice, other) => Some(SelfReported {
            choice: tag("heard_about", choice)?.unwrap_or_default(),
            other: if erased_at.is_some() {
                None
            } else {
                tag("heard_about_other", other)?
            },
        }),
    };
    let utm = Utm {
        utm_source: tag("utm_source", c.text("utm_source"))?,
        utm_medium: tag("utm_medium", c.text("utm_medium"))?,
        utm_campaign: tag("utm_campaign", c.text("utm_campaign"))?,
        utm_term: tag("utm_term", c.text("utm_term"))?,
        utm_content: tag("utm_content", c.text("utm_content"))?,
        gclid: tag("gclid", c.text("gclid"))?,
        gbraid: tag("gbraid", c.text("gbraid"))?,
        wbraid: tag("wbraid", c.text("wbraid"))?,
        fbclid: tag("fbclid", c.text("fbclid"))?,
        msclkid: tag("msclkid", c.text("msclkid"))?,
        ttclid: tag("ttclid", c.text("ttclid"))?,
        li_fat_id: tag("li_fat_id", c.text("li_fat_id"))?,
    };
    Ok(ImportedLead {
        line,
        created_at,
        widget,
        source,
        first_touch,
        credited,
        touches,
        landing_page_url: tag("landing_page_url", c.text("landing_page_url"))?,
        referrer: tag("referrer", c.text("referrer"))?,
        utm,
        self_reported,
        address,
        project,
        personal,
        contact,
        outcome,
        erased_at,
    })
}

/// Reads an import (times before `now`). A header names the columns — the lead export's
/// names, in any order; `created_at`, `widget_version`, `source_code`, `street`, `city`,
/// `state` and `postal_code` are needed — then one lead per line. Every line that cannot be
/// taken is listed with its reason; a lead's `id` column, if any, is not kept (an imported
/// lead gets a new id).
pub fn parse_lead_import(text: &str, now: i64) -> LeadImportFile {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return LeadImportFile {
                lines: Vec::new(),
                refused: vec![refused(1, format!("the header cannot be read: {e}"))],
            };
        }
    };
    let columns: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_ascii_lowercase(), i))
        .collect();
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !columns.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        return LeadImportFile {
            lines: Vec::new(),
            refused: vec![refused(
                1,
                format!(
                    "the first line names the columns; missing: {}",
                    missing.join(", ")
                ),
            )],
        };
    }
    let mut file = LeadImportFile::default();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                file.refused
                    .push(refused(line, format!("the line cannot be read: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if file.lines.len() + file.refused.len() >= IMPORT_LEADS_MAX {
            file.refused.push(refused(
                line,
                format!("an import has at most {IMPORT_LEADS_MAX} leads; split the file"),
            ));
            break;
        }
        let get = |name: &str| {
            columns
                .get(name)
                .and_then(|i| record.get(*i))
                .unwrap_or_default()
        };
        match read_line(&Cells { get: &get }, line, now) {
            Ok(lead) => file.lines.push(lead),
            Err(e) => file.refused.push(refused(line, e.message)),
        }
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::OutcomeKind;

    const NOW: i64 = 1_800_000_000_000;

    const HEADER: &str = "created_at,widget_version,source_code,street,city,state,postal_code,\
        roof_type,material,stories,urgency,first_name,last_name,email,phone,owner_occupied,\
        contact_method,contact_time,outcome,outcome_value,lost_reason,utm_source";

    #[test]
    fn a_whole_lead_is_read_with_its_steps_and_outcome() {
        let text = format!(
            "{HEADER}\n2025-03-04T15:00:00Z,01,SRC-02,1 Main St,Austin,TX,78701,replacement,\
             metal,2,within_1_month,Ann,Lee,ann@example.com,'+15125550100,yes,phone,morning,won,\
             1250000,,'=cmd\n"
        );
        let file = parse_lead_import(&text, NOW);
        assert_eq!(file.refused, vec![]);
        let lead = &file.lines[0];
        assert_eq!(lead.line, 2);
        assert_eq!(lead.created_at, 1_741_100_400_000);
        assert_eq!(lead.source.to_string(), "02");
        assert_eq!(lead.status(), LeadStatus::ContactInfoProvided);
        assert_eq!(
            lead.personal.as_ref().map(|p| p.phone.as_str()),
            Some("+15125550100")
        );
        assert_eq!(lead.outcome.kind(), OutcomeKind::Won);
        assert_eq!(lead.outcome.value(), Some(1_250_000));
        // The export's apostrophe comes off: the tag is what the link carried.
        assert_eq!(lead.utm.utm_source.as_deref(), Some("=cmd"));
    }

    #[test]
    fn every_bad_line_is_listed_with_its_reason() {
        let text = format!(
            "{HEADER}\n\
             2025-03-04,01,02,1 Main St,Austin,TX,78701,,,,,,,,,,,,,,,\n\
             yesterday,01,02,1 Main St,Austin,TX,78701,,,,,,,,,,,,,,,\n\
             2025-03-04,01,02,1 Main St,Austin,TX,787,,,,,,,,,,,,,,,\n\
             2099-01-01,01,02,1 Main St,Austin,TX,78701,,,,,,,,,,,,,,,\n\
             2025-03-04,01,02,1 Main St,Austin,TX,78701,,,,,Ann,Lee,ann@example.com,5125550100,yes,,,,,,\n\
             2025-03-04,01,02,1 Main St,Austin,TX,78701,,,,,,,,,,,,won,,,\n"
        );
        let file = parse_lead_import(&text, NOW);
        assert_eq!(file.lines.len(), 1);
        let lines: Vec<u64> = file.refused.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(
            file.refused[0].reason.contains("created_at"),
            "{:?}",
            file.refused
        );
        assert!(file.refused[1].reason.contains("postal_code"));
        assert!(file.refused[2].reason.contains("future"));
        assert!(file.refused[3].reason.contains("project details"));
        assert!(
            file.refused[4].reason.contains("value"),
            "{:?}",
            file.refused[4]
        );
    }

    #[test]
    fn a_file_without_the_needed_columns_is_refused_at_its_header() {
        let file = parse_lead_import("created_at,widget_version\n2025-01-01,01\n", NOW);
        assert!(file.lines.is_empty());
        assert_eq!(file.refused.len(), 1);
        assert!(file.refused[0].reason.contains("source_code"));
    }

    #[test]
    fn an_erased_lead_comes_in_erased() {
        let text = "created_at,widget_version,source_code,street,city,state,postal_code,status,\
                    roof_type,material,stories,urgency,owner_occupied,erased_at\n\
                    2025-03-04,01,02,,Austin,TX,78701,personal_info_and_estimate_provided,\
                    repair,metal,1,emergency,false,2025-06-01T00:00:00Z\n";
        let file = parse_lead_import(text, NOW);
        assert_eq!(file.refused, vec![]);
        let lead = &file.lines[0];
        assert!(lead.erased_at.is_some());
        assert!(lead.address.street.is_empty());
        let personal = lead
            .personal
            .as_ref()
            .map(|p| (p.email.is_empty(), p.owner_occupied));
        assert_eq!(personal, Some((true, false)));
        assert_eq!(lead.status(), LeadStatus::PersonalInfoAndEstimateProvided);
    }
}
