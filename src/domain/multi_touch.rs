//! Multi-touch attribution: the touches of a lead (its visitor's tracked visits before it,
//! within the lookback window, then its own arrival) and how each model splits the lead's one
//! unit of credit among them. Credit is kept in fixed-point units (a millionth of a lead), and
//! every split is a largest-remainder apportionment, so the credits of a lead always sum to
//! exactly one lead and report totals never drift.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::DomainError;
use super::attribution::DerivedChannel;
use super::time_zone::DAY_MS;

/// One lead of credit, in units.
pub const UNIT: i64 = 1_000_000;

/// A (possibly fractional) number of leads, in millionths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credit(i64);

impl Credit {
    pub const ZERO: Credit = Credit(0);

    pub fn whole(n: u64) -> Self {
        Self(
            i64::try_from(n)
                .unwrap_or(i64::MAX / UNIT)
                .saturating_mul(UNIT),
        )
    }

    pub fn from_units(units: i64) -> Self {
        Self(units)
    }

    pub fn units(self) -> i64 {
        self.0
    }

    pub fn is_whole(self) -> bool {
        self.0 % UNIT == 0
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / UNIT as f64
    }

    /// Every digit (`0.333334`, `2`): a spreadsheet summing a column gets the exact total.
    pub fn exact(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let (whole, frac) = (self.0.abs() / UNIT, self.0.abs() % UNIT);
        if frac == 0 {
            format!("{sign}{whole}")
        } else {
            let digits = format!("{frac:06}");
            format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Add for Credit {
    type Output = Credit;
    fn add(self, other: Credit) -> Credit {
        Credit(self.0 + other.0)
    }
}

impl AddAssign for Credit {
    fn add_assign(&mut self, other: Credit) {
        self.0 += other.0;
    }
}

impl Sum for Credit {
    fn sum<I: Iterator<Item = Credit>>(iter: I) -> Credit {
        iter.fold(Credit::ZERO, Add::add)
    }
}

/// Whole numbers as they are (`3`), fractions with two decimals (`0.33`).
impl fmt::Display for Credit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole() {
            write!(f, "{}", self.0 / UNIT)
        } else {
            write!(f, "{:.2}", self.as_f64())
        }
    }
}

/// A whole number of leads is a JSON integer, as before models existed; a fraction is a
/// number with up to six decimals.
impl Serialize for Credit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            s.serialize_i64(self.0 / UNIT)
        } else {
            s.serialize_f64(self.as_f64())
        }
    }
}

impl utoipa::PartialSchema for Credit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some(
                "Leads credited: a whole number under last and first touch, a fraction under \
                 the multi-touch models (each lead's credits sum to exactly one)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Credit {}

/// How a lead's credit is split among its touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Model {
    /// All of it to the arrival (the source the lead is credited with, corrections included).
    #[default]
    LastTouch,
    /// All of it to the first tracked source the visitor came through.
    FirstTouch,
    /// Equal parts to every touch.
    Linear,
    /// 40 % to the first touch, 40 % to the last, 20 % spread over the ones between (with
    /// two touches, half each).
    PositionBased,
    /// Each touch weighs half as much as one a half-life later.
    TimeDecay,
}

impl Model {
    pub const ALL: [Model; 5] = [
        Model::LastTouch,
        Model::FirstTouch,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay,
    ];
    /// The models that read the touch history (last and first touch have their own columns).
    pub const MULTI_TOUCH: [Model; 3] = [Model::Linear, Model::PositionBased, Model::TimeDecay];

    pub fn id(self) -> &'static str {
        match self {
            Self::LastTouch => "last",
            Self::FirstTouch => "first",
            Self::Linear => "linear",
            Self::PositionBased => "position_based",
            Self::TimeDecay => "time_decay",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::LastTouch => "Last touch",
            Self::FirstTouch => "First touch",
            Self::Linear => "Linear",
            Self::PositionBased => "Position-based",
            Self::TimeDecay => "Time decay",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|m| m.id() == raw.trim())
            .ok_or_else(|| {
                DomainError::new(
                    "model",
                    format!("model {raw:?}: use last, first, linear, position_based or time_decay"),
                )
            })
    }

    pub fn is_multi_touch(self) -> bool {
        Self::MULTI_TOUCH.contains(&self)
    }
}

/// An organization's multi-touch settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditSettings {
    lookback_days: u32,
    half_life_days: u32,
}

impl Default for CreditSettings {
    fn default() -> Self {
        Self {
            lookback_days: 90,
            half_life_days: 7,
        }
    }
}

impl CreditSettings {
    pub const MAX_LOOKBACK_DAYS: u32 = 365;
    pub const MAX_HALF_LIFE_DAYS: u32 = 90;

    /// Lookback 1–365 days (how far back a visit still counts), half-life 1–90 days.
    pub fn new(lookback_days: i64, half_life_days: i64) -> Result<Self, DomainError> {
        let lookback = u32::try_from(lookback_days)
            .ok()
            .filter(|d| (1..=Self::MAX_LOOKBACK_DAYS).contains(d))
            .ok_or_else(|| {
                DomainError::new(
                    "lookback_days",
                    format!(
                        "the lookback window must be 1 to {} days (got {lookback_days})",
                        Self::MAX_LOOKBACK_DAYS
                    ),
                )
            })?;
        let half_life = u32::try_from(half_life_days)
            .ok()
            .filter(|d| (1..=Self::MAX_HALF_LIFE_DAYS).contains(d))
            .ok_or_else(|| {
                DomainError::new(
                    "half_life_days",
                    format!(
                        "the time-decay half-life must be 1 to {} days (got {half_life_days})",
                        Self::MAX_HALF_LIFE_DAYS
                    ),
                )
            })?;
        Ok(Self {
            lookback_days: lookback,
            half_life_days: half_life,
        })
    }

    pub fn lookback_days(self) -> u32 {
        self.lookback_days
    }

    pub fn half_life_days(self) -> u32 {
        self.half_life_days
    }

    /// The longest lookback an organization can choose: how far back a lead's touches are
    /// gathered when it arrives.
    pub const MAX_LOOKBACK_MS: i64 = Self::MAX_LOOKBACK_DAYS as i64 * DAY_MS;

    pub fn lookback_ms(self) -> i64 {
        i64::from(self.lookback_days) * DAY_MS
    }

    pub fn half_life_ms(self) -> i64 {
        i64::from(self.half_life_days) * DAY_MS
    }
}

/// Where a touch came through: a widget's source, and for its Website source (`SRC-01`) the
/// channel derived from the referrer and campaign tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TouchKey {
    #[serde(rename = "w")]
    pub widget: u32,
    #[serde(rename = "s")]
    pub source: u32,
    #[serde(rename = "ch", default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<DerivedChannel>,
}

/// One touch of a lead's journey (as kept on the lead, oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TouchPoint {
    /// Milliseconds since the epoch.
    pub at: i64,
    #[serde(flatten)]
    pub key: TouchKey,
}

/// A visit as the touch history needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitTouch {
    pub at: i64,
    pub key: TouchKey,
    /// An untagged page view reached from the site's own pages: the same visit going on, not
    /// a new touch.
    pub internal: bool,
}

/// A lead keeps at most this many touches: the first and the most recent others.
pub const MAX_TOUCHES: usize = 50;

/// The lead's touches, oldest first: its visitor's visits in `[arrival − lookback, arrival]`
/// (internal page views left out; a run of page views through one source is one touch, at
/// its latest), then the arrival itself, which is always the last touch.
pub fn gather(visits: &[VisitTouch], arrival: TouchPoint, lookback_ms: i64) -> Vec<TouchPoint> {
    let mut seen: Vec<&VisitTouch> = visits
        .iter()
        .filter(|v| !v.internal && v.at <= arrival.at && v.at >= arrival.at - lookback_ms)
        .collect();
    seen.sort_by_key(|v| v.at);
    let mut out: Vec<TouchPoint> = Vec::with_capacity(seen.len() + 1);
    let points = seen
        .into_iter()
        .map(|v| TouchPoint {
            at: v.at,
            key: v.key,
        })
        .chain(std::iter::once(arrival));
    for point in points {
        match out.last_mut() {
            Some(last) if last.key == point.key => last.at = point.at,
            _ => out.push(point),
        }
    }
    if out.len() > MAX_TOUCHES {
        out.drain(1..out.len() - (MAX_TOUCHES - 1));
    }
    out
}

/// Splits `amount` in proportion to `weights` into whole parts that sum to exactly `amount`
/// (largest remainder; ties go to the earlier part). A negative amount splits as the negation
/// of its absolute value, so a change taken back cancels exactly.
pub fn apportion(amount: i64, weights: &[i64]) -> Vec<i64> {
    if amount < 0 {
        return apportion(-amount, weights)
            .into_iter()
            .map(|p| -p)
            .collect();
    }
    let total: i128 = weights.iter().map(|w| i128::from((*w).max(0))).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = i128::from(amount) * i128::from((*w).max(0));
        parts.push(i64::try_from(exact / total).unwrap_or(0));
        remainders.push((exact % total, i));
    }
    let left = amount - parts.iter().sum::<i64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders
        .into_iter()
        .take(usize::try_from(left).unwrap_or(0))
    {
        parts[i] += 1;
    }
    parts
}

/// Each touch's share of one lead, in units summing to `UNIT`; empty without touches.
pub fn weights(model: Model, touches: &[TouchPoint], half_life_ms: i64) -> Vec<i64> {
    let n = touches.len();
    if n == 0 {
        return Vec::new();
    }
    let raw: Vec<i64> = match model {
        Model::LastTouch => (0..n).map(|i| i64::from(i == n - 1)).collect(),
        Model::FirstTouch => (0..n).map(|i| i64::from(i == 0)).collect(),
        Model::Linear => vec![1; n],
        Model::PositionBased => match n {
            1 | 2 => vec![1; n],
            // 40 : 20 : 40, the middle fifth split evenly: in (n − 2)ths of the whole.
            _ => {
                let ends = 40 * i64::try_from(n - 2).unwrap_or(1);
                (0..n)
                    .map(|i| if i == 0 || i == n - 1 { ends } else { 20 })
                    .collect()
            }
        },
        Model::TimeDecay => {
            let last = touches[n - 1].at;
            let half_life = half_life_ms.max(1) as f64;
            touches
                .iter()
                .map(|t| {
                    let age = (last - t.at).max(0) as f64;
                    // Weights on a fine integer scale; the oldest never drops to nothing.
                    ((2f64.powf(-age / half_life) * 1e12).round() as i64).max(1)
                })
                .collect()
        }
    };
    apportion(UNIT, &raw)
}

/// The lead's credit per touch key under `model` (touches of one key added up), summing to
/// one lead.
pub fn credit(model: Model, touches: &[TouchPoint], half_life_ms: i64) -> Vec<(TouchKey, i64)> {
    let mut out: BTreeMap<TouchKey, i64> = BTreeMap::new();
    for (touch, units) in touches.iter().zip(weights(model, touches, half_life_ms)) {
        *out.entry(touch.key).or_default() += units;
    }
    out.into_iter().filter(|(_, units)| *units != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn key(source: u32) -> TouchKey {
        TouchKey {
            widget: 1,
            source,
            channel: None,
        }
    }

    fn web(channel: DerivedChannel) -> TouchKey {
        TouchKey {
            widget: 1,
            source: 1,
            channel: Some(channel),
        }
    }

    fn touch(at: i64, key: TouchKey) -> TouchPoint {
        TouchPoint { at, key }
    }

    fn visit(at: i64, key: TouchKey) -> VisitTouch {
        VisitTouch {
            at,
            key,
            internal: false,
        }
    }

    fn split(model: Model, touches: &[TouchPoint]) -> Vec<i64> {
        weights(model, touches, 7 * DAY_MS)
    }

    #[test]
    fn one_touch_gets_the_whole_lead_under_every_model() {
        let t = [touch(0, key(2))];
        for model in Model::ALL {
            assert_eq!(split(model, &t), vec![UNIT], "{model:?}");
        }
    }

    #[test]
    fn two_touches_by_hand() {
        let t = [touch(0, key(2)), touch(7 * DAY_MS, key(3))];
        assert_eq!(split(Model::LastTouch, &t), vec![0, UNIT]);
        assert_eq!(split(Model::FirstTouch, &t), vec![UNIT, 0]);
        assert_eq!(split(Model::Linear, &t), vec![500_000, 500_000]);
        assert_eq!(split(Model::PositionBased, &t), vec![500_000, 500_000]);
        // One half-life apart: weights 1/2 and 1 → one third and two thirds.
        assert_eq!(split(Model::TimeDecay, &t), vec![333_333, 666_667]);
    }

    #[test]
    fn five_touches_by_hand() {
        let t: Vec<TouchPoint> = (0..5)
            .map(|i| touch(i * 7 * DAY_MS, key(2 + i as u32)))
            .collect();
        assert_eq!(split(Model::Linear, &t), vec![200_000; 5]);
        // 40 % first and last; 20 % over three middles = 6.6667 % each, the leftover unit
        // to the earliest of the equal remainders.
        assert_eq!(
            split(Model::PositionBased, &t),
            vec![400_000, 66_667, 66_667, 66_666, 400_000]
        );
        // Weights 1/16, 1/8, 1/4, 1/2, 1 over 31/16: 1/31, 2/31, 4/31, 8/31, 16/31.
        assert_eq!(
            split(Model::TimeDecay, &t),
            vec![32_258, 64_516, 129_032, 258_065, 516_129]
        );
        assert_eq!(split(Model::FirstTouch, &t), vec![UNIT, 0, 0, 0, 0]);
        assert_eq!(split(Model::LastTouch, &t), vec![0, 0, 0, 0, UNIT]);
    }

    #[test]
    fn three_touches_split_in_thirds_that_sum_to_one() {
        let t = [touch(0, key(2)), touch(H, key(3)), touch(2 * H, key(4))];
        assert_eq!(split(Model::Linear, &t), vec![333_334, 333_333, 333_333]);
        assert_eq!(
            split(Model::PositionBased, &t),
            vec![400_000, 200_000, 400_000]
        );
    }

    #[test]
    fn every_split_sums_to_exactly_one_lead() {
        for n in 1..=MAX_TOUCHES {
            let t: Vec<TouchPoint> = (0..n)
                .map(|i| touch(i as i64 * 13 * H, key(1 + (i % 7) as u32)))
                .collect();
            for model in Model::ALL {
                let w = split(model, &t);
                assert_eq!(w.iter().sum::<i64>(), UNIT, "{model:?} over {n}");
                assert!(w.iter().all(|u| *u >= 0));
                let credited: i64 = credit(model, &t, 7 * DAY_MS).iter().map(|c| c.1).sum();
                assert_eq!(credited, UNIT);
            }
        }
    }

    #[test]
    fn touches_of_one_source_add_up() {
        // A, B, A: linear gives A two thirds.
        let t = [touch(0, key(2)), touch(H, key(3)), touch(2 * H, key(2))];
        assert_eq!(
            credit(Model::Linear, &t, DAY_MS),
            vec![(key(2), 666_667), (key(3), 333_333)]
        );
    }

    #[test]
    fn gathering_keeps_the_window_drops_internal_views_and_merges_runs() {
        let arrival = touch(100 * DAY_MS, key(4));
        let visits = [
            // Outside a 90-day lookback.
            visit(9 * DAY_MS, key(9)),
            visit(20 * DAY_MS, key(2)),
            // The same source again: one touch, at its latest.
            visit(20 * DAY_MS + H, key(2)),
            VisitTouch {
                at: 20 * DAY_MS + 2 * H,
                key: web(DerivedChannel::Direct),
                internal: true,
            },
            visit(50 * DAY_MS, web(DerivedChannel::OrganicSearch)),
            // After the lead: not part of its journey.
            visit(101 * DAY_MS, key(7)),
            // The arrival's own page view merges with the arrival.
            visit(100 * DAY_MS - 1000, key(4)),
        ];
        assert_eq!(
            gather(&visits, arrival, 90 * DAY_MS),
            vec![
                touch(20 * DAY_MS + H, key(2)),
                touch(50 * DAY_MS, web(DerivedChannel::OrganicSearch)),
                arrival,
            ]
        );
        // A lookback of 60 days leaves the first touch out.
        assert_eq!(gather(&visits, arrival, 60 * DAY_MS).len(), 2);
        // No visits: the arrival alone.
        assert_eq!(gather(&[], arrival, 90 * DAY_MS), vec![arrival]);
    }

    #[test]
    fn a_long_journey_keeps_its_first_touch_and_the_latest_others() {
        let visits: Vec<VisitTouch> = (0..120)
            .map(|i| visit(i * H, key(2 + (i % 2) as u32)))
            .collect();
        let arrival = touch(200 * H, key(9));
        let t = gather(&visits, arrival, 90 * DAY_MS);
        assert_eq!(t.len(), MAX_TOUCHES);
        assert_eq!(t[0].at, 0);
        assert_eq!(t[1].at, 72 * H);
        assert_eq!(t[MAX_TOUCHES - 1], arrival);
    }

    #[test]
    fn apportioning_is_exact_and_negation_cancels() {
        let w = [333_334, 333_333, 333_333];
        assert_eq!(apportion(100, &w), vec![34, 33, 33]);
        assert_eq!(apportion(-100, &w), vec![-34, -33, -33]);
        assert_eq!(apportion(7, &[0, 0]), vec![0, 0]);
        assert_eq!(apportion(0, &w), vec![0, 0, 0]);
        assert_eq!(
            apportion(1_999_999_999, &w).iter().sum::<i64>(),
            1_999_999_999
        );
    }

    #[test]
    fn credit_reads_and_prints_exactly() {
        assert_eq!(Credit::from_units(333_334).exact(), "0.333334");
        assert_eq!(Credit::whole(3).exact(), "3");
        assert_eq!(Credit::from_units(1_500_000).to_string(), "1.50");
        assert_eq!(Credit::whole(2).to_string(), "2");
        assert_eq!(
            serde_json::to_string(&Credit::whole(2)).ok().as_deref(),
            Some("2")
        );
        assert_eq!(
            serde_json::to_string(&Credit::from_units(333_333))
                .ok()
                .as_deref(),
            Some("0.333333")
        );
    }

    #[test]
    fn settings_and_models_parse_or_say_why_not() {
        assert!(CreditSettings::new(90, 7).is_ok());
        assert_eq!(
            CreditSettings::new(0, 7).map_err(|e| e.field),
            Err("lookback_days")
        );
        assert_eq!(
            CreditSettings::new(366, 7).map_err(|e| e.field),
            Err("lookback_days")
        );
        assert_eq!(
            CreditSettings::new(30, 0).map_err(|e| e.field),
            Err("half_life_days")
        );
        assert_eq!(
            CreditSettings::new(30, 91).map_err(|e| e.field),
            Err("half_life_days")
        );
        assert_eq!(Model::parse("position_based"), Ok(Model::PositionBased));
        assert!(Model::parse("data_driven").is_err());
        for m in Model::ALL {
            assert_eq!(Model::parse(m.id()), Ok(m));
        }
    }
}
