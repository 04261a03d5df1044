//! The built-in enrichment: a deterministic roof estimate, a lead score with its reasons, and
//! buyer insights. Same lead in, same result out — so re-running it after a crash is harmless.

use serde::{Deserialize, Serialize};

use super::lead::{PersonalInfo, ProjectDetails};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    /// Roof surface in square feet (footprint × pitch factor, with overhang).
    pub roof_area_sqft: u32,
    /// Roofing squares (100 sq ft each), waste included.
    pub squares: f64,
    pub material: String,
    pub price_low: u32,
    pub price_high: u32,
    pub currency: String,
}

impl Estimate {
    /// The pipeline value of a lead: the middle of its price range, in whole currency units.
    pub fn midpoint(&self) -> i64 {
        (i64::from(self.price_low) + i64::from(self.price_high)) / 2
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Insights {
    pub urgency: String,
    pub financing_interest: bool,
    pub rental_property: bool,
    pub insurance_claim: bool,
    pub roof_age_band: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrichment {
    pub score: u8,
    pub score_reasons: Vec<String>,
    pub insights: Insights,
    pub estimate: Estimate,
    /// `built_in`, or the external enricher's name when it answered in time.
    pub provider: String,
}

/// The home size assumed when the homeowner did not give one (a typical US single-family home).
pub const DEFAULT_HOME_SQFT: u32 = 1_800;
/// Cut-offs, ridge caps and starter courses: roofers order about a tenth more than the area.
const WASTE_FACTOR: f64 = 1.10;
/// Eaves and rakes overhang the walls.
const OVERHANG_FACTOR: f64 = 1.10;

fn pitch_factor(pitch: &str) -> f64 {
    match pitch {
        "flat" => 1.0,
        "low" => 1.06,
        "steep" => 1.42,
        // medium and unknown: a 6/12 roof, the most common.
        _ => 1.12,
    }
}

/// Installed price per square (low, high) in USD.
fn price_per_square(material: &str) -> (f64, f64) {
    match material {
        "metal" => (900.0, 1_400.0),
        "tile" => (1_000.0, 1_800.0),
        "slate" => (1_500.0, 3_000.0),
        "flat" => (600.0, 950.0),
        "wood_shake" => (800.0, 1_250.0),
        // asphalt shingle and unknown
        _ => (450.0, 650.0),
    }
}

fn round_to_hundred(value: f64) -> u32 {
    ((value / 100.0).round() * 100.0).clamp(0.0, f64::from(u32::MAX)) as u32
}

pub fn estimate(project: &ProjectDetails, personal: &PersonalInfo) -> Estimate {
    let home = f64::from(personal.home_sqft.unwrap_or(DEFAULT_HOME_SQFT));
    let footprint = home / f64::from(project.stories.max(1)) * OVERHANG_FACTOR;
    let area = footprint * pitch_factor(&project.pitch);
    let squares = (area * WASTE_FACTOR / 100.0 * 10.0).round() / 10.0;
    let (low, high) = price_per_square(&project.material);
    // Repairs and inspections are a fraction of a full replacement.
    let scope = match project.roof_type.as_str() {
        "repair" => 0.15,
        "inspection" => 0.02,
        _ => 1.0,
    };
    Estimate {
        roof_area_sqft: area.round() as u32,
        squares,
        material: project.material.clone(),
        price_low: round_to_hundred(squares * low * scope),
        price_high: round_to_hundred(squares * high * scope),
        currency: "USD".to_owned(),
    }
}

pub fn enrich(project: &ProjectDetails, personal: &PersonalInfo) -> Enrichment {
    let mut score: i32 = 40;
    let mut reasons = Vec::new();
    let mut add = |points: i32, reason: &str| {
        score += points;
        reasons.push(format!(
            "{}{points} {reason}",
            if points >= 0 { "+" } else { "" }
        ));
    };
    match project.urgency.as_str() {
        "emergency" => add(25, "needs work now"),
        "within_1_month" => add(18, "wants work within a month"),
        "within_3_months" => add(10, "wants work within three months"),
        "within_6_months" => add(3, "wants work within six months"),
        _ => add(-10, "still researching"),
    }
    match project.roof_type.as_str() {
        "replacement" | "new_construction" => add(10, "full roof project"),
        "inspection" => add(-5, "inspection only"),
        _ => {}
    }
    if personal.owner_occupied {
        add(10, "owner-occupied home");
    } else {
        add(
            -15,
            "rental property: the decision-maker may be the landlord",
        );
    }
    if project.insurance_claim == Some(true) {
        add(10, "insurance claim in progress");
    }
    if project.roof_age_years.is_some_and(|age| age >= 20) {
        add(8, "roof is 20 years or older");
    }
    if project.financing_interest == Some(true) {
        add(2, "interested in financing");
    }
    let roof_age_band = match project.roof_age_years {
        None => "unknown",
        Some(0..=9) => "under_10",
        Some(10..=19) => "10_to_19",
        Some(_) => "20_plus",
    };
    Enrichment {
        score: score.clamp(0, 100) as u8,
        score_reasons: reasons,
        insights: Insights {
            urgency: project.urgency.clone(),
            financing_interest: project.financing_interest.unwrap_or(false),
            rental_property: !personal.owner_occupied,
            insurance_claim: project.insurance_claim.unwrap_or(false),
            roof_age_band: roof_age_band.to_owned(),
        },
        estimate: estimate(project, personal),
        provider: "built_in".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lead::ProjectInput;

    fn project(material: &str, stories: i64, pitch: &str, urgency: &str) -> ProjectDetails {
        ProjectDetails::parse(ProjectInput {
            roof_type: "replacement",
            material,
            stories,
            pitch: Some(pitch),
            urgency,
            roof_age_years: Some(25),
            insurance_claim: Some(true),
            financing_interest: None,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn person(owner: bool, sqft: Option<i64>) -> PersonalInfo {
        PersonalInfo::parse("Ann", "Lee", "ann@example.com", "5125550100", owner, sqft)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn estimate_scales_with_home_size_stories_and_pitch() {
        let e = estimate(
            &project("asphalt_shingle", 1, "medium", "emergency"),
            &person(true, Some(2000)),
        );
        // 2000 sq ft × 1.10 overhang × 1.12 pitch = 2464 sq ft; ×1.10 waste = 27.1 squares.
        assert_eq!(e.roof_area_sqft, 2464);
        assert!((e.squares - 27.1).abs() < 1e-9);
        assert_eq!((e.price_low, e.price_high), (12_200, 17_600));
        let two_story = estimate(
            &project("asphalt_shingle", 2, "medium", "emergency"),
            &person(true, Some(2000)),
        );
        assert!(two_story.roof_area_sqft < e.roof_area_sqft);
        let steep = estimate(
            &project("asphalt_shingle", 1, "steep", "emergency"),
            &person(true, Some(2000)),
        );
        assert!(steep.roof_area_sqft > e.roof_area_sqft);
        let slate = estimate(
            &project("slate", 1, "medium", "emergency"),
            &person(true, Some(2000)),
        );
        assert!(slate.price_low > e.price_high);
    }

    #[test]
    fn enrichment_is_deterministic_and_scores_stay_in_range() {
        let a = enrich(
            &project("metal", 2, "low", "emergency"),
            &person(true, None),
        );
        let b = enrich(
            &project("metal", 2, "low", "emergency"),
            &person(true, None),
        );
        assert_eq!(a, b);
        assert!(a.score <= 100);
        assert_eq!(
            a.score, 100,
            "emergency + replacement + owner + claim + old roof caps at 100"
        );
        let cold = enrich(
            &project("metal", 2, "low", "researching"),
            &person(false, None),
        );
        assert!(cold.score < 60);
        assert!(cold.insights.rental_property);
        assert!(cold.score_reasons.iter().any(|r| r.contains("rental")));
    }
}
