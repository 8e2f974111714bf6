//! SVG plots of size sweeps: for each criterion group measured at two or more payload sizes,
//! time per operation against size on log-log axes, one line per function, so pontoon, its peers
//! and the physical limit share one plot. On these axes a copy at fixed bandwidth is a line of
//! slope 1 and a zero-copy path is flat.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::results::Measurement;

/// One plot: a criterion group's sweep.
#[derive(Debug)]
pub(crate) struct Plot {
    /// The criterion group, e.g. `wire/decode`.
    pub(crate) group: String,
    /// A file name for it, e.g. `wire_decode.svg`.
    pub(crate) file_name: String,
    pub(crate) svg: String,
}

/// A payload size written as criterion parameters are here (`100B`, `4KiB`, `64MiB`, `1GiB`),
/// in bytes.
pub(crate) fn parse_size(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number * scale)
}

/// A line's points: size in bytes, median ns per iteration.
type Line = Vec<(f64, f64)>;

/// The plots of every group in `results` measured at two or more sizes.
pub(crate) fn sweeps(results: &BTreeMap<String, Measurement>) -> Vec<Plot> {
    // group -> function -> points
    let mut groups: BTreeMap<&str, BTreeMap<&str, Line>> = BTreeMap::new();
    for m in results.values() {
        let Some(size) = m.parameter.as_deref().and_then(parse_size) else {
            continue;
        };
        groups
            .entry(m.group.as_str())
            .or_default()
            .entry(m.function.as_str())
            .or_default()
            .push((size, m.median_ns));
    }
    let mut plots = Vec::new();
    for (group, lines) in groups {
        let mut sizes: Vec<f64> = lines.values().flatten().map(|p| p.0).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        if sizes.len() < 2 {
            continue;
        }
        let lines: Vec<(&str, Line)> = lines
            .into_iter()
            .map(|(function, mut line)| {
                line.sort_by(|a, b| a.0.total_cmp(&b.0));
                (function, line)
            })
            .collect();
        plots.push(Plot {
            group: group.to_owned(),
            file_name: format!("{}.svg", group.replace('/', "_")),
            svg: render(group, &lines),
        });
    }
    plots
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// Log-log axes spanning `lo..hi`, padded to whole powers of `base`.
fn span(lo: f64, hi: f64, base: f64) -> (f64, f64) {
    let lo = lo.log(base).floor();
    let hi = hi.log(base).ceil().max(lo + 1.0);
    (lo, hi)
}

fn render(group: &str, lines: &[(&str, Line)]) -> String {
    let points = || lines.iter().flat_map(|(_, line)| line.iter());
    let (x_lo, x_hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (y_lo, y_hi) = points().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    // Sizes in powers of 2 (ticks at KiB, MiB, GiB), values in powers of 10.
    let (xa, xb) = span(x_lo, x_hi, 2.0);
    let (ya, yb) = span(y_lo.max(1e-3), y_hi.max(1e-3), 10.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v.log2() - xa) / (xb - xa) * plot_w;
    let y = |v: f64| TOP + plot_h - (v.max(1e-3).log10() - ya) / (yb - ya) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"15\">{}</text>\n",
        escape(group)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444\"/>"
    );
    // x ticks: every power of 2 that is a multiple of 10 (1 KiB, 1 MiB, ...), or every second
    // power when the range is short.
    let step = if xb - xa > 12.0 { 10 } else { 2 };
    for e in (xa as i64..=xb as i64).filter(|e| e.rem_euclid(step) == 0) {
        let px = x(2f64.powi(e as i32));
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            TOP + plot_h,
            TOP + plot_h + 18.0,
            size_label(e)
        );
    }
    for e in ya as i64..=yb as i64 {
        let value = 10f64.powi(e as i32);
        let py = y(value);
        let label = super::format_time(value);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">payload size</text>\
         <text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">time per operation</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
    );
    for (i, (function, line)) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = line
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for p in line {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(p.0),
                y(p.1)
            );
        }
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(function)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `2^e` bytes as a label: `1KiB`, `16MiB`.
fn size_label(e: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let unit = (e.div_euclid(10)).clamp(0, 4);
    let rest = e - unit * 10;
    format!("{}{}", 1u64 << rest.clamp(0, 63), units[unit as usize])
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::results::sample;
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("100B"), Some(100.0));
        assert_eq!(parse_size("4KiB"), Some(4096.0));
        assert_eq!(parse_size("64MiB"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_size("1GiB"), Some(1024f64.powi(3)));
        assert_eq!(parse_size("64x100B"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(size_label(10), "1KiB");
        assert_eq!(size_label(24), "16MiB");
    }

    #[test]
    fn plots_only_sweeps() {
        let mut results = BTreeMap::new();
        for (function, size, ns) in [
            ("pontoon", "1KiB", 50.0),
            ("pontoon", "1MiB", 60.0),
            ("memcpy", "1MiB", 90_000.0),
        ] {
            results.insert(
                format!("wire/decode/{function}/{size}"),
                sample("wire/decode", function, Some(size), ns),
            );
        }
        results.insert(
            "wire/small/x".to_owned(),
            sample("wire/small", "x", None, 1.0),
        );
        results.insert(
            "one/size/x".to_owned(),
            sample("one/size", "x", Some("1KiB"), 1.0),
        );
        let plots = sweeps(&results);
        assert_eq!(plots.len(), 1, "{plots:?}");
        assert_eq!(plots[0].file_name, "wire_decode.svg");
        let svg = &plots[0].svg;
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains(">memcpy<") && svg.contains(">pontoon<"));
    }
}
