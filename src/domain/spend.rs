//! What a source cost: an amount per source and calendar month, entered by hand, by the API or
//! imported as CSV. A report over a range of days counts each month's spend in proportion to
//! the days of that month it covers, so "last 30 days" costs what those 30 days cost.

use std::collections::HashMap;

use jiff::civil::Date;
use serde::Serialize;

use super::DomainError;
use super::money::parse_major_units;
use super::source::SourceCode;
use super::time_zone::day_number;
use super::widget::WidgetVersion;

/// At most ten million whole units a month for one source, in minor units.
pub const AMOUNT_MAX: i64 = 1_000_000_000;
/// Rows one import may carry.
pub const IMPORT_ROWS_MAX: usize = 5_000;

/// A calendar month, `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i16,
    month: i8,
}

impl Month {
    /// `yyyy-mm`, years 2000 to 2099.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::new("month", "a month is written yyyy-mm, e.g. 2026-11");
        let (y, m) = raw.trim().split_once('-').ok_or_else(invalid)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()))
        {
            return Err(invalid());
        }
        let year: i16 = y.parse().map_err(|_| invalid())?;
        let month: i8 = m.parse().map_err(|_| invalid())?;
        if !(2000..=2099).contains(&year) || !(1..=12).contains(&month) {
            return Err(invalid());
        }
        Ok(Self { year, month })
    }

    /// The month a local date is in.
    pub fn of(date: Date) -> Self {
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    fn first(self) -> Date {
        Date::new(self.year, self.month, 1).unwrap_or(Date::ZERO)
    }

    /// Local day numbers `[first, next month's first)`.
    pub fn days(self) -> (i64, i64) {
        let first = self.first();
        let next = first.last_of_month().tomorrow().unwrap_or(first);
        (day_number(first), day_number(next))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// An amount of spend in minor units, 0 to `AMOUNT_MAX`.
pub fn parse_amount(amount: i64) -> Result<i64, DomainError> {
    if (0..=AMOUNT_MAX).contains(&amount) {
        Ok(amount)
    } else {
        Err(DomainError::new(
            "amount",
            format!("the amount is 0 to {AMOUNT_MAX} minor units (cents)"),
        ))
    }
}

/// The part of a month's `amount` that falls on local days `[from, to)` (either end open),
/// rounded to the nearest minor unit.
pub fn prorated(amount: i64, month: Month, from: Option<i64>, to: Option<i64>) -> i64 {
    let (first, next) = month.days();
    let start = from.map_or(first, |f| f.max(first));
    let end = to.map_or(next, |t| t.min(next));
    if end <= start {
        return 0;
    }
    let (covered, days) = (i128::from(end - start), i128::from(next - first));
    let share = (i128::from(amount) * covered * 2 + days) / (days * 2);
    i64::try_from(share).unwrap_or(i64::MAX)
}

/// One month of one source's spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendEntry {
    pub widget: WidgetVersion,
    pub source: SourceCode,
    pub month: Month,
    pub amount: i64,
}

/// A line of an import that can be taken (if its source exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    pub line: u64,
    pub entry: SpendEntry,
}

/// An import as read: the lines that can be taken (if their sources exist) and those that
/// cannot. It is written only when nothing is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFile {
    pub lines: Vec<ImportLine>,
    pub refused: Vec<RefusedLine>,
}

impl ImportFile {
    fn unreadable(reason: String) -> Self {
        Self {
            lines: Vec::new(),
            refused: vec![refused(1, reason)],
        }
    }
}

/// A line of an import that cannot be taken, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RefusedLine {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// The header an import starts with.
pub const IMPORT_HEADER: [&str; 4] = ["widget_version", "source_code", "month", "amount"];

/// Reads an import: a header naming the four columns (in any order), then a row per source
/// and month with the amount in whole units and up to two decimals (`1250`, `1250.50`,
/// `$1,250.50`). Every line that cannot be taken is listed, so a whole file is fixed in one go;
/// the same source and month twice is refused on its second line.
pub fn parse_import(text: &str) -> ImportFile {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        // A spreadsheet's "CSV UTF-8" starts with a byte-order mark.
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return ImportFile::unreadable(format!("the header cannot be read: {e}")),
    };
    let position: Vec<Option<usize>> = IMPORT_HEADER
        .iter()
        .map(|name| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
        .collect();
    if position.iter().any(Option::is_none) {
        return ImportFile::unreadable(format!(
            "the first line names the columns {}",
            IMPORT_HEADER.join(",")
        ));
    }
    let column: Vec<usize> = position.into_iter().flatten().collect();
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<(WidgetVersion, SourceCode, Month), u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                problems.push(refused(line, format!("the line cannot be read: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(str::is_empty) {
            continue;
        }
        if entries.len() + problems.len() >= IMPORT_ROWS_MAX {
            problems.push(refused(
                line,
                format!("an import has at most {IMPORT_ROWS_MAX} rows"),
            ));
            break;
        }
        let cell = |i: usize| record.get(column[i]).unwrap_or_default();
        match import_row(cell(0), cell(1), cell(2), cell(3)) {
            Ok(entry) => {
                let key = (entry.widget, entry.source, entry.month);
                if let Some(first) = seen.get(&key) {
                    problems.push(refused(
                        line,
                        format!(
                            "{} of widget {} for {} is already on line {first}",
                            entry.source.display_code(),
                            entry.widget,
                            entry.month
                        ),
                    ));
                } else {
                    seen.insert(key, line);
                    entries.push(ImportLine { line, entry });
                }
            }
            Err(e) => problems.push(refused(line, e.message)),
        }
    }
    ImportFile {
        lines: entries,
        refused: problems,
    }
}

fn refused(line: u64, reason: impl Into<String>) -> RefusedLine {
    RefusedLine {
        line,
        reason: reason.into(),
    }
}

fn import_row(
    widget: &str,
    source: &str,
    month: &str,
    amount: &str,
) -> Result<SpendEntry, DomainError> {
    let widget = widget
        .parse::<u32>()
        .ok()
        .and_then(WidgetVersion::new)
        .ok_or_else(|| {
            DomainError::new(
                "widget_version",
                format!("{widget:?} is not a widget version"),
            )
        })?;
    let code = source
        .strip_prefix("SRC-")
        .or_else(|| source.strip_prefix("src-"))
        .unwrap_or(source);
    let source = code
        .parse::<u32>()
        .ok()
        .and_then(SourceCode::new)
        .ok_or_else(|| {
            DomainError::new("source_code", format!("{source:?} is not a source code"))
        })?;
    Ok(SpendEntry {
        widget,
        source,
        month: Month::parse(month)?,
        amount: parse_amount(parse_major_units("amount", amount)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    #[test]
    fn months_parse_strictly() {
        assert_eq!(month("2026-11").to_string(), "2026-11");
        for bad in [
            "2026-13",
            "2026-00",
            "26-11",
            "2026-1",
            "2026/11",
            "1999-12",
            "2026-11-01",
            "",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let (first, next) = month("2024-02").days();
        assert_eq!(next - first, 29);
        let (first, next) = month("2026-12").days();
        assert_eq!(next - first, 31);
    }

    #[test]
    fn a_range_pays_for_the_days_of_each_month_it_covers() {
        let nov = month("2026-11");
        let (first, next) = nov.days();
        assert_eq!(prorated(30_000, nov, None, None), 30_000);
        assert_eq!(prorated(30_000, nov, Some(first), Some(next)), 30_000);
        assert_eq!(
            prorated(30_000, nov, Some(first + 10), Some(first + 20)),
            10_000
        );
        assert_eq!(prorated(30_000, nov, Some(next), None), 0);
        assert_eq!(prorated(30_000, nov, None, Some(first)), 0);
        // One day of 31: 100 / 31 = 3.23 → 3; 2 days → 6.45 → 6.
        let dec = month("2026-12");
        let (d, _) = dec.days();
        assert_eq!(prorated(100, dec, Some(d), Some(d + 1)), 3);
        assert_eq!(prorated(100, dec, Some(d), Some(d + 2)), 6);
    }

    #[test]
    fn imports_list_every_bad_line_and_refuse_a_month_twice() {
        let file = parse_import(
            "widget_version,source_code,month,amount\n01,SRC-02,2026-10,\"$1,250.50\"\n1,3,2026-10,80\n",
        );
        assert!(file.refused.is_empty());
        let ok = file.lines;
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].line, ok[0].entry.amount), (2, 125_050));
        assert_eq!((ok[1].line, ok[1].entry.amount), (3, 8_000));
        let bad = parse_import(
            "month,amount,widget_version,source_code\n\
             2026-10,100,1,2\n\
             2026-13,100,1,2\n\
             2026-10,12.345,1,2\n\
             2026-10,100,1,2\n\
             2026-10,100,0,2\n\
             2026-10,-5,1,3\n",
        )
        .refused;
        let lines: Vec<u64> = bad.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(
            bad[2].reason.contains("already on line 2"),
            "{}",
            bad[2].reason
        );
        let excel =
            parse_import("\u{feff}widget_version,source_code,month,amount\r\n01,02,2026-10,5\r\n");
        assert!(excel.refused.is_empty(), "{:?}", excel.refused);
        assert_eq!(excel.lines[0].entry.amount, 500);
        let header = parse_import("source,amount\n1,2\n").refused;
        assert_eq!(header[0].line, 1);
    }
}
