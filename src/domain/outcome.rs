//! What happened after a lead arrived: `open` → `contacted` → `quoted` → `won` | `lost`.
//! A won lead carries the job's value, a lost one its reason; the decision of whether a change
//! is allowed is made here, once, for the dashboard and the API alike.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// A job's value in minor units of the organization's currency (cents), at most ten million
/// whole units: enough for any home-services job, small enough that sums never overflow.
pub const VALUE_MAX: i64 = 1_000_000_000;
/// A free-text lost reason, at most this many characters.
pub const REASON_TEXT_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Open,
    Contacted,
    Quoted,
    Won,
    Lost,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 5] = [
        Self::Open,
        Self::Contacted,
        Self::Quoted,
        Self::Won,
        Self::Lost,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Contacted => "contacted",
            Self::Quoted => "quoted",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::Contacted => "Contacted",
            Self::Quoted => "Quoted",
            Self::Won => "Won",
            Self::Lost => "Lost",
        }
    }

    /// Someone has worked the lead but it is not decided.
    fn is_worked(self) -> bool {
        matches!(self, Self::Contacted | Self::Quoted)
    }
}

/// Why a lead was lost: one of the reasons a home-services business hears most, or the
/// business's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    Listed(ListedReason),
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedReason {
    Price,
    Competitor,
    NoResponse,
    Timing,
    OutOfArea,
    NotAFit,
}

impl ListedReason {
    pub const ALL: [ListedReason; 6] = [
        Self::Price,
        Self::Competitor,
        Self::NoResponse,
        Self::Timing,
        Self::OutOfArea,
        Self::NotAFit,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Competitor => "competitor",
            Self::NoResponse => "no_response",
            Self::Timing => "timing",
            Self::OutOfArea => "out_of_area",
            Self::NotAFit => "not_a_fit",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Price => "Price too high",
            Self::Competitor => "Went with a competitor",
            Self::NoResponse => "Never reached them",
            Self::Timing => "Not ready yet",
            Self::OutOfArea => "Outside our service area",
            Self::NotAFit => "Not a job we do",
        }
    }
}

impl LostReason {
    /// A listed reason's id, else the text as the business's own reason.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let text = raw.trim();
        if let Some(listed) = ListedReason::ALL.into_iter().find(|r| r.id() == text) {
            return Ok(Self::Listed(listed));
        }
        if text.is_empty()
            || text.chars().count() > REASON_TEXT_MAX
            || text.chars().any(char::is_control)
        {
            return Err(DomainError::new(
                "lost_reason",
                format!(
                    "give one of {} or your own words (1 to {REASON_TEXT_MAX} characters)",
                    ListedReason::ALL.map(ListedReason::id).join(", ")
                ),
            ));
        }
        Ok(Self::Other(text.to_owned()))
    }

    /// As stored and sent: the listed id, or the text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Listed(r) => r.id(),
            Self::Other(text) => text,
        }
    }

    /// As a person reads it.
    pub fn label(&self) -> &str {
        match self {
            Self::Listed(r) => r.label(),
            Self::Other(text) => text,
        }
    }
}

/// A lead's outcome with what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Open,
    Contacted,
    Quoted,
    /// The job's value, minor units.
    Won {
        value: i64,
    },
    Lost {
        reason: LostReason,
    },
}

impl Outcome {
    /// From a request: `value` goes with `won` only and is required there, `lost_reason` with
    /// `lost` only and is required there.
    pub fn parse(
        outcome: &str,
        value: Option<i64>,
        lost_reason: Option<&str>,
    ) -> Result<Self, DomainError> {
        let kind = OutcomeKind::from_id(outcome.trim()).ok_or_else(|| {
            DomainError::new(
                "outcome",
                "outcome is one of open, contacted, quoted, won, lost",
            )
        })?;
        if kind != OutcomeKind::Won && value.is_some() {
            return Err(DomainError::new("value", "only a won lead has a value"));
        }
        if kind != OutcomeKind::Lost && lost_reason.is_some() {
            return Err(DomainError::new(
                "lost_reason",
                "only a lost lead has a lost reason",
            ));
        }
        Ok(match kind {
            OutcomeKind::Open => Self::Open,
            OutcomeKind::Contacted => Self::Contacted,
            OutcomeKind::Quoted => Self::Quoted,
            OutcomeKind::Won => {
                let value = value.ok_or_else(|| {
                    DomainError::new(
                        "value",
                        "a won lead needs the job's value, in minor units (cents)",
                    )
                })?;
                if !(0..=VALUE_MAX).contains(&value) {
                    return Err(DomainError::new(
                        "value",
                        format!("the value is 0 to {VALUE_MAX} minor units"),
                    ));
                }
                Self::Won { value }
            }
            OutcomeKind::Lost => Self::Lost {
                reason: LostReason::parse(lost_reason.ok_or_else(|| {
                    DomainError::new("lost_reason", "a lost lead needs a reason")
                })?)?,
            },
        })
    }

    /// From stored columns (written only after `parse`); `None` when they do not make an
    /// outcome.
    pub fn from_stored(kind: &str, value: Option<i64>, reason: Option<&str>) -> Option<Self> {
        Self::parse(kind, value, reason).ok()
    }

    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Open => OutcomeKind::Open,
            Self::Contacted => OutcomeKind::Contacted,
            Self::Quoted => OutcomeKind::Quoted,
            Self::Won { .. } => OutcomeKind::Won,
            Self::Lost { .. } => OutcomeKind::Lost,
        }
    }

    pub fn value(&self) -> Option<i64> {
        match self {
            Self::Won { value } => Some(*value),
            _ => None,
        }
    }

    pub fn lost_reason(&self) -> Option<&LostReason> {
        match self {
            Self::Lost { reason } => Some(reason),
            _ => None,
        }
    }

    /// Won or lost: its estimate no longer counts as pipeline.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Won { .. } | Self::Lost { .. })
    }
}

/// What asking for `to` does to a lead whose outcome is `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeDecision {
    /// The lead already has exactly this outcome: nothing is written, nothing emitted (a CRM
    /// that writes back the same state again changes nothing).
    Unchanged,
    Change {
        from: Outcome,
        to: Outcome,
    },
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeRefusal {
    #[error(
        "a lead that was {0} is not open again; set it to contacted or quoted, or close it as won or lost"
    )]
    WorkedLeadReopened(&'static str),
}

/// The outcome rules: forward moves may skip steps (a CRM may only learn the end), contacted
/// and quoted in either order, a closed lead may be reopened or closed the other way (won ↔
/// lost, a correction), and a won lead's value may be corrected. `open` means nobody has
/// worked the lead yet, so a contacted or quoted lead cannot go back to it.
pub fn decide_outcome(from: &Outcome, to: Outcome) -> Result<OutcomeDecision, OutcomeRefusal> {
    if *from == to {
        return Ok(OutcomeDecision::Unchanged);
    }
    if from.kind().is_worked() && to == Outcome::Open {
        return Err(OutcomeRefusal::WorkedLeadReopened(from.kind().id()));
    }
    Ok(OutcomeDecision::Change {
        from: from.clone(),
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn won(value: i64) -> Outcome {
        Outcome::Won { value }
    }

    fn lost(reason: &str) -> Outcome {
        Outcome::Lost {
            reason: LostReason::parse(reason).unwrap(),
        }
    }

    #[test]
    fn forward_moves_may_skip_and_the_middle_goes_either_way() {
        for (from, to) in [
            (Outcome::Open, Outcome::Contacted),
            (Outcome::Open, Outcome::Quoted),
            (Outcome::Open, won(100)),
            (Outcome::Open, lost("price")),
            (Outcome::Contacted, Outcome::Quoted),
            (Outcome::Quoted, Outcome::Contacted),
            (Outcome::Quoted, won(100)),
            (Outcome::Contacted, lost("timing")),
        ] {
            assert!(
                matches!(
                    decide_outcome(&from, to.clone()),
                    Ok(OutcomeDecision::Change { .. })
                ),
                "{from:?} → {to:?}"
            );
        }
    }

    #[test]
    fn closed_leads_reopen_and_switch_and_values_are_corrected() {
        for (from, to) in [
            (won(100), Outcome::Open),
            (lost("price"), Outcome::Open),
            (won(100), Outcome::Quoted),
            (lost("price"), Outcome::Contacted),
            (won(100), lost("competitor")),
            (lost("competitor"), won(100)),
            (won(100), won(250)),
            (lost("price"), lost("Went with his cousin")),
        ] {
            assert!(
                matches!(
                    decide_outcome(&from, to.clone()),
                    Ok(OutcomeDecision::Change { .. })
                ),
                "{from:?} → {to:?}"
            );
        }
    }

    #[test]
    fn worked_leads_do_not_go_back_to_open() {
        assert_eq!(
            decide_outcome(&Outcome::Contacted, Outcome::Open),
            Err(OutcomeRefusal::WorkedLeadReopened("contacted"))
        );
        assert_eq!(
            decide_outcome(&Outcome::Quoted, Outcome::Open),
            Err(OutcomeRefusal::WorkedLeadReopened("quoted"))
        );
    }

    #[test]
    fn the_same_outcome_again_changes_nothing() {
        for same in [Outcome::Open, Outcome::Quoted, won(100), lost("price")] {
            assert_eq!(
                decide_outcome(&same, same.clone()),
                Ok(OutcomeDecision::Unchanged)
            );
        }
    }

    #[test]
    fn requests_carry_what_their_outcome_needs_and_nothing_else() {
        assert_eq!(Outcome::parse("won", Some(1500000), None), Ok(won(1500000)));
        assert_eq!(Outcome::parse(" quoted ", None, None), Ok(Outcome::Quoted));
        assert_eq!(
            Outcome::parse("lost", None, Some("competitor")).unwrap(),
            lost("competitor")
        );
        assert_eq!(
            Outcome::parse("lost", None, Some("  His brother-in-law does roofs ")),
            Ok(Outcome::Lost {
                reason: LostReason::Other("His brother-in-law does roofs".into())
            })
        );
        let field = |r: Result<Outcome, DomainError>| r.unwrap_err().field;
        assert_eq!(field(Outcome::parse("won", None, None)), "value");
        assert_eq!(field(Outcome::parse("won", Some(-1), None)), "value");
        assert_eq!(
            field(Outcome::parse("won", Some(VALUE_MAX + 1), None)),
            "value"
        );
        assert_eq!(field(Outcome::parse("quoted", Some(5), None)), "value");
        assert_eq!(field(Outcome::parse("lost", None, None)), "lost_reason");
        assert_eq!(
            field(Outcome::parse("lost", None, Some("  "))),
            "lost_reason"
        );
        assert_eq!(
            field(Outcome::parse("lost", None, Some("a\u{7}b"))),
            "lost_reason"
        );
        assert_eq!(
            field(Outcome::parse("won", Some(5), Some("price"))),
            "lost_reason"
        );
        assert_eq!(field(Outcome::parse("closed", None, None)), "outcome");
        let long = "x".repeat(REASON_TEXT_MAX + 1);
        assert_eq!(
            field(Outcome::parse("lost", None, Some(&long))),
            "lost_reason"
        );
    }

    #[test]
    fn listed_reasons_are_kept_by_id_and_shown_by_label() {
        for listed in ListedReason::ALL {
            let reason = LostReason::parse(listed.id()).unwrap();
            assert_eq!(reason, LostReason::Listed(listed));
            assert_eq!(reason.as_str(), listed.id());
            assert_eq!(reason.label(), listed.label());
            assert!(!listed.label().is_empty() && listed.label() != listed.id());
        }
        assert_eq!(
            LostReason::parse("price").unwrap().label(),
            "Price too high"
        );
        let own = LostReason::parse("Went with his cousin").unwrap();
        assert_eq!(
            (own.as_str(), own.label()),
            ("Went with his cousin", "Went with his cousin")
        );
        // Exactly the longest own words allowed.
        let longest = "x".repeat(REASON_TEXT_MAX);
        assert_eq!(LostReason::parse(&longest).unwrap().as_str(), longest);
    }

    #[test]
    fn outcomes_carry_their_value_and_reason_and_say_if_closed() {
        assert_eq!(won(1_250_000).value(), Some(1_250_000));
        assert_eq!(Outcome::Quoted.value(), None);
        assert_eq!(
            lost("timing").lost_reason().map(LostReason::as_str),
            Some("timing")
        );
        assert_eq!(won(5).lost_reason(), None);
        assert!(won(5).is_closed() && lost("price").is_closed());
        assert!(!Outcome::Contacted.is_closed() && !Outcome::Open.is_closed());
        let labels: Vec<&str> = OutcomeKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels, ["Open", "Contacted", "Quoted", "Won", "Lost"]);
        for kind in OutcomeKind::ALL {
            assert_eq!(OutcomeKind::from_id(kind.id()), Some(kind));
        }
    }

    #[test]
    fn stored_columns_read_back() {
        assert_eq!(Outcome::from_stored("won", Some(5), None), Some(won(5)));
        assert_eq!(
            Outcome::from_stored("lost", None, Some("no_response")),
            Some(lost("no_response"))
        );
        assert_eq!(Outcome::from_stored("won", None, None), None);
        assert_eq!(Outcome::from_stored("nonsense", None, None), None);
    }
}
