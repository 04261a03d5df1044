//! Report shapes: a row per source, per channel, per period and source; and the CSV export,
//! which neutralises cells a spreadsheet would run as formulas.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::channel::ChannelCategory;
use crate::store::{Counts, Source};

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SourceRow {
    pub widget_version: String,
    pub source_code: String,
    pub display_code: String,
    pub source_name: String,
    pub channel_category: ChannelCategory,
    pub visits: u64,
    pub leads: u64,
    pub enriched: u64,
    pub contact_requested: u64,
    /// Of `leads`, how many a person re-assigned to this source (last touch only).
    pub corrected: u64,
    /// Leads ÷ visits; 0 without visits.
    pub conversion_rate: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChannelRow {
    pub channel_category: ChannelCategory,
    pub visits: u64,
    pub leads: u64,
    pub enriched: u64,
    pub contact_requested: u64,
    pub corrected: u64,
    pub conversion_rate: f64,
}

fn rate(leads: u64, visits: u64) -> f64 {
    if visits == 0 {
        0.0
    } else {
        // Four decimals is plenty for a percentage and keeps the JSON and CSV tidy.
        ((leads as f64 / visits as f64) * 10_000.0).round() / 10_000.0
    }
}

/// Every source of the listed widgets gets a row, even with nothing counted, so a new source
/// shows up as zero rather than missing.
pub fn source_rows(sources: &[Source], counts: &BTreeMap<(u32, u32), Counts>) -> Vec<SourceRow> {
    sources
        .iter()
        .map(|s| {
            let c = counts
                .get(&(s.widget_version.get(), s.code.get()))
                .copied()
                .unwrap_or_default();
            SourceRow {
                widget_version: s.widget_version.to_string(),
                source_code: s.code.to_string(),
                display_code: s.code.display_code(),
                source_name: s.name.clone(),
                channel_category: s.channel_category,
                visits: c.visits,
                leads: c.leads,
                enriched: c.enriched,
                contact_requested: c.contact_requested,
                corrected: c.corrected,
                conversion_rate: rate(c.leads, c.visits),
            }
        })
        .collect()
}

pub fn channel_rows(rows: &[SourceRow]) -> Vec<ChannelRow> {
    let mut by: BTreeMap<&'static str, ChannelRow> = BTreeMap::new();
    for r in rows {
        let entry = by.entry(r.channel_category.id()).or_insert(ChannelRow {
            channel_category: r.channel_category,
            visits: 0,
            leads: 0,
            enriched: 0,
            contact_requested: 0,
            corrected: 0,
            conversion_rate: 0.0,
        });
        entry.visits += r.visits;
        entry.leads += r.leads;
        entry.enriched += r.enriched;
        entry.contact_requested += r.contact_requested;
        entry.corrected += r.corrected;
    }
    by.into_values()
        .map(|mut c| {
            c.conversion_rate = rate(c.leads, c.visits);
            c
        })
        .collect()
}

/// One cell of the tracked-source × self-reported matrix.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SelfReportedCell {
    pub widget_version: String,
    pub source_code: String,
    pub source_name: String,
    /// The homeowner's answer to "How did you hear about us?"; `null` for leads that did not
    /// answer (or whose widget does not ask).
    pub heard_about: Option<String>,
    pub leads: u64,
}

/// The matrix as cells, tracked sources in the order given, answers alphabetical with the
/// unanswered last; cells with no leads are left out.
pub fn self_reported_cells(
    sources: &[Source],
    counts: &BTreeMap<(u32, u32, Option<String>), u64>,
) -> Vec<SelfReportedCell> {
    let mut out = Vec::new();
    for s in sources {
        let key = (s.widget_version.get(), s.code.get());
        let mut answers: Vec<(&Option<String>, u64)> = counts
            .iter()
            .filter(|((w, c, _), _)| (*w, *c) == key)
            .map(|((_, _, answer), n)| (answer, *n))
            .collect();
        answers.sort_by_key(|(answer, _)| (answer.is_none(), (*answer).clone()));
        out.extend(answers.into_iter().map(|(answer, leads)| SelfReportedCell {
            widget_version: s.widget_version.to_string(),
            source_code: s.code.to_string(),
            source_name: s.name.clone(),
            heard_about: answer.clone(),
            leads,
        }));
    }
    out
}

/// A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return
/// that hides one) as a formula; a leading apostrophe makes it text.
pub fn neutralise(cell: &str) -> String {
    let text = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub fn sources_csv(rows: &[SourceRow]) -> String {
    let mut out = String::from(
        "widget_version,source_code,display_code,source_name,channel_category,visits,leads,enriched,contact_requested,conversion_rate,corrected\n",
    );
    for r in rows {
        let cells = [
            r.widget_version.clone(),
            r.source_code.clone(),
            r.display_code.clone(),
            r.source_name.clone(),
            r.channel_category.id().to_owned(),
            r.visits.to_string(),
            r.leads.to_string(),
            r.enriched.to_string(),
            r.contact_requested.to_string(),
            format!("{:.4}", r.conversion_rate),
            r.corrected.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| neutralise(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_quoted_cells_escaped() {
        assert_eq!(
            neutralise("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-2"), "'-2");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("Facebook, Inc"), "\"Facebook, Inc\"");
        assert_eq!(neutralise("Yard Signs"), "Yard Signs");
    }

    #[test]
    fn conversion_is_zero_without_visits() {
        assert_eq!(rate(5, 0), 0.0);
        assert_eq!(rate(1, 3), 0.3333);
    }
}
