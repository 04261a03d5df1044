//! QR rendering: median time to render one tracking-URL code as a 1024 px PNG and as SVG,
//! against the bare QR encoding measured in the same run.
//!
//! Run: `cargo bench --bench qr`

use std::hint::black_box;
use std::time::{Duration, Instant};

use leadtrail::domain::organization::BrandColor;
use leadtrail::qr::{DEFAULT_PNG_SIZE, Symbol, render_png, render_svg};

const URL: &str = "https://acme-roofing.example/free-estimate?lang=en&roof-estimate=open&v=01&s=02";
const RUNS: usize = 2_000;

fn median(mut f: impl FnMut()) -> Duration {
    for _ in 0..50 {
        f();
    }
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[RUNS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let color = BrandColor::parse("#0B5394")?;
    let symbol = Symbol::encode(URL)?;
    let png_bytes = render_png(&symbol, color, DEFAULT_PNG_SIZE)?.len();
    let svg_bytes = render_svg(&symbol, color).len();

    let encode = median(|| {
        black_box(Symbol::encode(black_box(URL)).ok());
    });
    let png = median(|| {
        let s = Symbol::encode(black_box(URL)).ok();
        black_box(s.and_then(|s| render_png(&s, color, DEFAULT_PNG_SIZE).ok()));
    });
    let svg = median(|| {
        let s = Symbol::encode(black_box(URL)).ok();
        black_box(s.map(|s| render_svg(&s, color)));
    });

    let ratio = |d: Duration| d.as_secs_f64() / encode.as_secs_f64();
    println!(
        "QR rendering, median of {RUNS} runs ({} modules + quiet zone)",
        symbol.modules()
    );
    println!(
        "  baseline: encode only        {:>8.3} ms",
        encode.as_secs_f64() * 1e3
    );
    println!(
        "  PNG 1024 px (encode+render)  {:>8.3} ms  {:>5.1}x baseline  {png_bytes} bytes",
        png.as_secs_f64() * 1e3,
        ratio(png)
    );
    println!(
        "  SVG (encode+render)          {:>8.3} ms  {:>5.1}x baseline  {svg_bytes} bytes",
        svg.as_secs_f64() * 1e3,
        ratio(svg)
    );
    println!(
        "  target: PNG under 2 ms -> {}",
        if png < Duration::from_millis(2) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
