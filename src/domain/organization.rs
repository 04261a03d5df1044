//! An organization's own settings: its name, website and brand colour.

use std::fmt;

use url::Url;

use super::DomainError;
use super::error::parse_display_name;

/// The subscriber's business name, shown in the dashboard and in QR file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);

impl OrgName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_display_name("name", raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A public web address a widget lives on: absolute http(s) with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteUrl(Url);

impl SiteUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw.len() > Self::MAX_LEN {
            return Err(DomainError::new(
                field,
                format!("{field} must be at most {} bytes", Self::MAX_LEN),
            ));
        }
        let url = Url::parse(raw)
            .map_err(|e| DomainError::new(field, format!("{field} is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DomainError::new(
                field,
                format!("{field} must start with http:// or https://"),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DomainError::new(field, format!("{field} must name a host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DomainError::new(
                field,
                format!("{field} must not carry a user name or password"),
            ));
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// `#RRGGBB`, stored upper-case. QR codes are drawn in it on white, so a colour too light to
/// stand out against white is refused: scanners threshold the image and lose pale modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrandColor([u8; 3]);

impl BrandColor {
    /// WCAG's contrast floor for graphical objects; below it phone cameras in daylight, and
    /// faded prints, stop telling modules from background reliably.
    pub const MIN_CONTRAST_ON_WHITE: f64 = 3.0;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let field = "brand_color";
        let hex = raw
            .trim()
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                DomainError::new(field, "brand_color must be a hex colour like #1A73E8")
            })?;
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_default();
        let color = Self([channel(0), channel(2), channel(4)]);
        let contrast = color.contrast_against_white();
        if contrast < Self::MIN_CONTRAST_ON_WHITE {
            return Err(DomainError::new(
                field,
                format!(
                    "brand_color {color} is too light for a QR code to scan on white \
                     (contrast {contrast:.1}:1, at least {:.1}:1 is needed); choose a darker shade",
                    Self::MIN_CONTRAST_ON_WHITE
                ),
            ));
        }
        Ok(color)
    }

    pub fn rgb(self) -> [u8; 3] {
        self.0
    }

    /// WCAG 2 contrast ratio between this colour and pure white.
    pub fn contrast_against_white(self) -> f64 {
        1.05 / (self.luminance() + 0.05)
    }

    /// The text colour for labels on this colour (the widget's buttons): white when it reaches
    /// WCAG AA for normal text (4.5:1), else near-black, whichever reads better.
    pub fn text_color(self) -> &'static str {
        let on_white = self.contrast_against_white();
        let near_black = BrandColor([0x11, 0x11, 0x11]).luminance();
        let on_dark = (self.luminance() + 0.05) / (near_black + 0.05);
        if on_white >= 4.5 || on_white >= on_dark {
            "#FFFFFF"
        } else {
            "#111111"
        }
    }

    fn luminance(self) -> f64 {
        let linear = |c: u8| {
            let s = f64::from(c) / 255.0;
            if s <= 0.040_45 {
                s / 12.92
            } else {
                ((s + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0;
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }
}

impl fmt::Display for BrandColor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02X}{g:02X}{b:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_on_the_brand_colour_is_white_when_it_reads_and_dark_when_not() {
        let text = |hex: &str| BrandColor::parse(hex).map(BrandColor::text_color);
        assert_eq!(text("#0B5394"), Ok("#FFFFFF"));
        assert_eq!(text("#1F2937"), Ok("#FFFFFF"));
        // Orange passes the QR floor (3:1 on white) but white text on it would not read.
        assert_eq!(text("#C2410C"), Ok("#FFFFFF"));
        assert_eq!(text("#D97706"), Ok("#111111"));
    }

    #[test]
    fn brand_color_is_normalised_to_upper_case() {
        let c = BrandColor::parse("#1a73e8").map(|c| c.to_string());
        assert_eq!(c.as_deref(), Ok("#1A73E8"));
    }

    #[test]
    fn brand_color_must_be_six_hex_digits() {
        for bad in ["1A73E8", "#1A73E", "#GGGGGG", "#1A73E8FF", "", "#"] {
            assert!(BrandColor::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn brand_color_too_light_to_scan_is_refused_with_the_reason() {
        let err = BrandColor::parse("#FFEB3B").err();
        assert!(err.is_some_and(|e| e.message.contains("too light")));
        assert!(BrandColor::parse("#000000").is_ok());
        assert!(BrandColor::parse("#D32F2F").is_ok());
    }

    #[test]
    fn site_url_must_be_absolute_http() {
        assert!(SiteUrl::parse("site_url", "https://acme.example/roofing?x=1").is_ok());
        for bad in [
            "acme.example",
            "ftp://acme.example",
            "javascript:alert(1)",
            "https://",
        ] {
            assert!(SiteUrl::parse("site_url", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn organization_name_refuses_control_characters() {
        assert!(OrgName::parse("Acme\u{0}Roofing").is_err());
        assert_eq!(
            OrgName::parse("  Acme Roofing ").map(|n| n.as_str().to_owned()),
            Ok("Acme Roofing".to_owned())
        );
    }
}
