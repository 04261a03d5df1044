//! QR codes for tracking URLs: brand-coloured dark modules on white, as PNG or SVG. No I/O.
//!
//! Error correction is level Q (about 25% of the symbol recoverable). Yard signs, vehicle wraps
//! and mailers get scuffed, faded and photographed at angles; Q survives that damage while a
//! typical tracking URL (60–120 characters) still fits a version small enough to scan from a
//! distance. H would make the modules denser for 5% more recovery; M and L give up too much.

use fast_qr::{ECL, QRBuilder, QRCode};

use crate::domain::organization::BrandColor;

/// Light modules around the symbol, in modules. The QR standard asks for 4.
pub const QUIET_ZONE: usize = 4;
pub const DEFAULT_PNG_SIZE: u32 = 1024;
pub const MIN_PNG_SIZE: u32 = 256;
pub const MAX_PNG_SIZE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the tracking URL is too long to fit in a QR code")]
    TooLong,
    #[error("PNG size must be {MIN_PNG_SIZE} to {MAX_PNG_SIZE} pixels")]
    Size,
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The module grid of an encoded URL, quiet zone not included.
pub struct Symbol {
    size: usize,
    dark: Vec<bool>,
}

impl Symbol {
    pub fn encode(text: &str) -> Result<Self, QrError> {
        let qr: QRCode = QRBuilder::new(text)
            .ecl(ECL::Q)
            .build()
            .map_err(|_| QrError::TooLong)?;
        let dark = qr.data[..qr.size * qr.size]
            .iter()
            .map(|m| m.value())
            .collect();
        Ok(Self {
            size: qr.size,
            dark,
        })
    }

    /// Modules per side, without the quiet zone.
    pub fn modules(&self) -> usize {
        self.size
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.size + x]
    }
}

/// A square PNG of exactly `size_px` pixels: a 1-bit palette image (white, brand colour), each
/// module a whole number of pixels so edges stay sharp; the pixels left over from that rounding
/// widen the quiet zone, which never drops below four modules.
pub fn render_png(symbol: &Symbol, color: BrandColor, size_px: u32) -> Result<Vec<u8>, QrError> {
    if !(MIN_PNG_SIZE..=MAX_PNG_SIZE).contains(&size_px) {
        return Err(QrError::Size);
    }
    let side = size_px as usize;
    let total_modules = symbol.size + 2 * QUIET_ZONE;
    let scale = side / total_modules;
    if scale == 0 {
        return Err(QrError::Size);
    }
    let offset = (side - symbol.size * scale) / 2;
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0u8; row_bytes * side];
    for my in 0..symbol.size {
        // Build one pixel row for this module row, then copy it `scale` times.
        let mut row = vec![0u8; row_bytes];
        for mx in 0..symbol.size {
            if symbol.is_dark(mx, my) {
                let start = offset + mx * scale;
                for px in start..start + scale {
                    row[px / 8] |= 0x80 >> (px % 8);
                }
            }
        }
        let top = offset + my * scale;
        for py in top..top + scale {
            pixels[py * row_bytes..(py + 1) * row_bytes].copy_from_slice(&row);
        }
    }
    let mut out = Vec::with_capacity(4096);
    {
        let mut encoder = png::Encoder::new(&mut out, size_px, size_px);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::One);
        let [r, g, b] = color.rgb();
        encoder.set_palette(vec![255, 255, 255, r, g, b]);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

/// An SVG in module units (it scales to any print size): a white square and one path with a
/// unit square per run of dark modules.
pub fn render_svg(symbol: &Symbol, color: BrandColor) -> String {
    let total = symbol.size + 2 * QUIET_ZONE;
    let mut path = String::with_capacity(symbol.size * symbol.size * 4);
    for y in 0..symbol.size {
        let mut x = 0;
        while x < symbol.size {
            if symbol.is_dark(x, y) {
                let start = x;
                while x < symbol.size && symbol.is_dark(x, y) {
                    x += 1;
                }
                let (px, py, run) = (start + QUIET_ZONE, y + QUIET_ZONE, x - start);
                path.push_str(&format!("M{px} {py}h{run}v1h-{run}z"));
            } else {
                x += 1;
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {total} {total}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{total}\" height=\"{total}\" fill=\"#FFFFFF\"/>\
         <path fill=\"{color}\" d=\"{path}\"/></svg>"
    )
}

/// `<OrgName>-<SourceName>-v<version>-s<code>-QR.<ext>`, with spaces and characters that file
/// systems or shells trip over turned into `-` (runs collapsed). Letters outside ASCII are
/// kept: the HTTP layer sends them through `filename*`.
pub fn download_file_name(org: &str, source: &str, version: &str, code: &str, ext: &str) -> String {
    format!(
        "{}-{}-v{version}-s{code}-QR.{ext}",
        file_name_part(org),
        file_name_part(source)
    )
}

fn file_name_part(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let unsafe_char = c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '/' | '\\'
                    | ':'
                    | '*'
                    | '?'
                    | '"'
                    | '<'
                    | '>'
                    | '|'
                    | '#'
                    | '%'
                    | '&'
                    | '\''
                    | '`'
                    | ';'
                    | '$'
                    | '!'
                    | '='
                    | '+'
                    | ','
                    | '.'
                    | '~'
                    | '{'
                    | '}'
                    | '['
                    | ']'
                    | '^'
                    | '@'
            );
        if unsafe_char {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "QR".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_follows_the_spec_example() {
        assert_eq!(
            download_file_name("Spark360", "Facebook Ads", "01", "02", "png"),
            "Spark360-Facebook-Ads-v01-s02-QR.png"
        );
    }

    #[test]
    fn file_name_replaces_unsafe_characters_and_keeps_letters() {
        assert_eq!(
            download_file_name("Acme / Sons", "Yard #1: Main St.", "02", "10", "svg"),
            "Acme-Sons-Yard-1-Main-St-v02-s10-QR.svg"
        );
        assert_eq!(
            download_file_name("Dächer Müller", "Café 🏠 Ads", "01", "03", "png"),
            "Dächer-Müller-Café-🏠-Ads-v01-s03-QR.png"
        );
        assert_eq!(
            download_file_name("///", "..", "01", "02", "png"),
            "QR-QR-v01-s02-QR.png"
        );
    }

    #[test]
    fn png_size_is_bounded() {
        let symbol = Symbol::encode("https://acme.example/?roof-estimate=open&v=01&s=02");
        let symbol = symbol.unwrap_or_else(|e| panic!("{e}"));
        let black = BrandColor::parse("#000000").unwrap_or_else(|e| panic!("{e}"));
        assert!(render_png(&symbol, black, 255).is_err());
        assert!(render_png(&symbol, black, 4097).is_err());
        assert!(render_png(&symbol, black, 256).is_ok());
    }

    #[test]
    fn svg_has_a_quiet_zone_and_the_brand_colour() {
        let symbol = Symbol::encode("https://acme.example/").unwrap_or_else(|e| panic!("{e}"));
        let color = BrandColor::parse("#0B5394").unwrap_or_else(|e| panic!("{e}"));
        let svg = render_svg(&symbol, color);
        let total = symbol.modules() + 8;
        assert!(svg.contains(&format!("viewBox=\"0 0 {total} {total}\"")));
        assert!(svg.contains("fill=\"#0B5394\""));
        assert!(
            svg.contains("M4 4h7"),
            "the finder pattern starts inside the quiet zone"
        );
    }
}
