//! Money as people write it and as it is kept: whole units with up to two decimals
//! (`1,250.50`, `$1250`) in forms and files, minor units (cents) everywhere else.

use super::DomainError;

/// `1250`, `1250.5`, `1,250.50`, `$1250` → minor units (`125050`).
pub fn parse_major_units(field: &'static str, raw: &str) -> Result<i64, DomainError> {
    let invalid = || {
        DomainError::new(
            field,
            format!("{raw:?} is not an amount (whole units with up to two decimals, e.g. 1250.50)"),
        )
    };
    let text: String = raw
        .trim()
        .trim_start_matches('$')
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let (whole, cents) = match text.split_once('.') {
        Some((w, c)) if !c.is_empty() && c.len() <= 2 => (w, c),
        Some(_) => return Err(invalid()),
        None => (text.as_str(), ""),
    };
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(cents.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let cents: i64 = if cents.is_empty() {
        0
    } else {
        format!("{cents:0<2}").parse().map_err(|_| invalid())?
    };
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(invalid)
}

/// Minor units as a form shows them back: `1250.50`, or `1250` when whole.
pub fn major_units(minor: i64) -> String {
    if minor % 100 == 0 {
        (minor / 100).to_string()
    } else {
        format!("{}.{:02}", minor / 100, (minor % 100).abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_people_write_them() {
        let parse = |raw| parse_major_units("amount", raw);
        assert_eq!(parse("1250"), Ok(125_000));
        assert_eq!(parse("1250.5"), Ok(125_050));
        assert_eq!(parse("$1,250.05"), Ok(125_005));
        for bad in [
            "",
            "12.",
            ".5",
            "1.234",
            "abc",
            "-1",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(major_units(125_050), "1250.50");
        assert_eq!(major_units(125_000), "1250");
    }
}
