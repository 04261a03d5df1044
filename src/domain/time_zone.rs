//! An organization's time zone: where its days begin and end. Reports group by its local days,
//! date filters mean its local dates, and the dashboard shows times in it. The zone database is
//! compiled in (jiff's bundled tzdb), so a machine without `/usr/share/zoneinfo` agrees with one
//! that has it.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::DomainError;

pub const DAY_MS: i64 = 86_400_000;

/// A stored time (Unix milliseconds) as RFC 3339 UTC, as the API and payloads show times.
pub fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// An IANA zone name (`America/Denver`, `Asia/Kolkata`, `UTC`) that the bundled database knows.
#[derive(Debug, Clone)]
pub struct OrgTimeZone {
    name: String,
    tz: TimeZone,
}

impl PartialEq for OrgTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for OrgTimeZone {}

impl Default for OrgTimeZone {
    fn default() -> Self {
        Self::utc()
    }
}

/// A stretch of time with one UTC offset: `[start_ms, end_ms)` at `offset_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetSpan {
    pub start_ms: i64,
    pub end_ms: i64,
    pub offset_ms: i64,
}

fn epoch() -> Date {
    Date::constant(1970, 1, 1)
}

impl OrgTimeZone {
    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        // Names only: a fixed offset like "+05:30" would ignore the zone's daylight saving.
        let known = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
        let tz = known
            .then(|| TimeZone::get(name).ok())
            .flatten()
            .ok_or_else(|| {
                DomainError::new(
                    "time_zone",
                    format!("{name:?} is not an IANA time zone name, like America/Denver or UTC"),
                )
            })?;
        Ok(Self {
            name: tz.iana_name().unwrap_or(name).to_owned(),
            tz,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn timestamp(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The local date of an instant.
    pub fn date_of(&self, ms: i64) -> Date {
        self.tz.to_datetime(Self::timestamp(ms)).date()
    }

    /// The local day of an instant, numbered in days since 1970-01-01.
    pub fn day_of(&self, ms: i64) -> i64 {
        day_number(self.date_of(ms))
    }

    /// The first instant of a local date (midnight, or the end of a gap when a daylight-saving
    /// change skips midnight).
    pub fn start_of(&self, date: Date) -> i64 {
        date.to_zoned_datetime(self.tz.clone())
            .and_then(|z| z.start_of_day())
            .map_or(0, |z| z.timestamp().as_millisecond())
    }

    /// A local date and time as a form sends it (`2026-11-22T07:01`, seconds optional), as an
    /// instant; in a daylight-saving gap or overlap, the earlier reading.
    pub fn parse_local(&self, raw: &str) -> Option<i64> {
        let dt: jiff::civil::DateTime = raw.trim().parse().ok()?;
        dt.to_zoned_datetime(self.tz.clone())
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }

    /// The UTC offset at an instant, in milliseconds.
    pub fn offset_at(&self, ms: i64) -> i64 {
        i64::from(self.tz.to_offset(Self::timestamp(ms)).seconds()) * 1000
    }

    /// `[from, to)` cut where the offset changes, so a day number can be computed in SQL as
    /// `(created_at + offset) / DAY_MS` within each piece.
    pub fn offset_spans(&self, from_ms: i64, to_ms: i64) -> Vec<OffsetSpan> {
        let mut out = Vec::new();
        let mut start = from_ms;
        for transition in self.tz.following(Self::timestamp(from_ms)) {
            let at = transition.timestamp().as_millisecond();
            if at >= to_ms {
                break;
            }
            if at > start {
                out.push(OffsetSpan {
                    start_ms: start,
                    end_ms: at,
                    offset_ms: self.offset_at(start),
                });
                start = at;
            }
        }
        if start < to_ms {
            out.push(OffsetSpan {
                start_ms: start,
                end_ms: to_ms,
                offset_ms: self.offset_at(start),
            });
        }
        out
    }

    /// `2026-11-22 07:01` in this zone.
    pub fn format(&self, ms: i64) -> String {
        self.tz
            .to_datetime(Self::timestamp(ms))
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }
}

/// Days since 1970-01-01.
pub fn day_number(date: Date) -> i64 {
    date.since((jiff::Unit::Day, epoch()))
        .map_or(0, |span| i64::from(span.get_days()))
}

/// The date of a day number.
pub fn date_of_day(day: i64) -> Date {
    epoch()
        .checked_add(jiff::Span::new().days(day))
        .unwrap_or(epoch())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        rfc3339
            .parse::<Timestamp>()
            .map_or(i64::MIN, |t| t.as_millisecond())
    }

    #[test]
    fn names_are_iana_zones_and_nothing_else() {
        assert_eq!(
            OrgTimeZone::parse("America/Denver").map(|z| z.name().to_owned()),
            Ok("America/Denver".to_owned())
        );
        assert!(OrgTimeZone::parse("Asia/Kolkata").is_ok());
        assert!(OrgTimeZone::parse("UTC").is_ok());
        for bad in [
            "",
            "Mars/Olympus",
            "+05:30",
            "../etc/passwd",
            "America/Denver\n",
        ] {
            assert!(
                OrgTimeZone::parse(bad).is_err() || bad.trim() != bad,
                "{bad:?}"
            );
        }
        assert!(OrgTimeZone::parse("Mars/Olympus").is_err());
        assert!(OrgTimeZone::parse("+05:30").is_err());
    }

    #[test]
    fn an_evening_in_denver_is_still_that_day_there() {
        let denver = OrgTimeZone::parse("America/Denver").unwrap_or_default();
        // 2026-11-22 20:30 in Denver is 03:30 UTC the next day.
        let at = ms("2026-11-23T03:30:00Z");
        assert_eq!(denver.date_of(at), Date::constant(2026, 11, 22));
        assert_eq!(OrgTimeZone::utc().date_of(at), Date::constant(2026, 11, 23));
        assert_eq!(denver.format(at), "2026-11-22 20:30");
    }

    #[test]
    fn day_boundaries_follow_daylight_saving_and_half_hour_offsets() {
        let denver = OrgTimeZone::parse("America/Denver").unwrap_or_default();
        // DST began 2026-03-08 at 02:00 local: that day is 23 hours long.
        let start = denver.start_of(Date::constant(2026, 3, 8));
        let next = denver.start_of(Date::constant(2026, 3, 9));
        assert_eq!(start, ms("2026-03-08T07:00:00Z"));
        assert_eq!(next - start, 23 * 3_600_000);
        let kolkata = OrgTimeZone::parse("Asia/Kolkata").unwrap_or_default();
        assert_eq!(
            kolkata.start_of(Date::constant(2026, 11, 22)),
            ms("2026-11-21T18:30:00Z")
        );
        assert_eq!(
            kolkata.day_of(ms("2026-11-21T18:29:59Z")) + 1,
            kolkata.day_of(ms("2026-11-21T18:30:00Z"))
        );
    }

    #[test]
    fn offset_spans_cut_at_each_change_and_cover_the_range() {
        let denver = OrgTimeZone::parse("America/Denver").unwrap_or_default();
        let (from, to) = (ms("2026-03-01T07:00:00Z"), ms("2026-11-30T07:00:00Z"));
        let spans = denver.offset_spans(from, to);
        assert_eq!(spans.len(), 3, "{spans:?}");
        assert_eq!(spans[0].start_ms, from);
        assert_eq!(spans[2].end_ms, to);
        assert!(spans.windows(2).all(|w| w[0].end_ms == w[1].start_ms));
        assert_eq!(spans[0].offset_ms, -7 * 3_600_000);
        assert_eq!(spans[1].offset_ms, -6 * 3_600_000);
        // Within a span, the SQL day formula gives the local day of every instant.
        for span in &spans {
            for at in [
                span.start_ms,
                span.end_ms - 1,
                (span.start_ms + span.end_ms) / 2,
            ] {
                assert_eq!((at + span.offset_ms).div_euclid(DAY_MS), denver.day_of(at));
            }
        }
        assert_eq!(OrgTimeZone::utc().offset_spans(from, to).len(), 1);
    }

    #[test]
    fn form_times_are_read_in_the_zone() {
        let denver = OrgTimeZone::parse("America/Denver").unwrap_or_default();
        assert_eq!(
            denver.parse_local("2026-11-22T07:01"),
            Some(ms("2026-11-22T14:01:00Z"))
        );
        assert_eq!(
            denver.parse_local("2026-07-01T00:00:30"),
            Some(ms("2026-07-01T06:00:30Z"))
        );
        assert_eq!(denver.parse_local("yesterday"), None);
    }

    #[test]
    fn day_numbers_round_trip() {
        let date = Date::constant(2026, 11, 22);
        assert_eq!(date_of_day(day_number(date)), date);
        assert_eq!(day_number(Date::constant(1970, 1, 2)), 1);
    }
}
