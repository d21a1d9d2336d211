//! `abuse plot`: RSS over time, one line per run, as a small self-contained SVG (for
//! docs/benchmarks.md). Reads the CSV files `abuse server --rss-log` writes.

use crate::PlotArgs;
use rein_examples::fail;
use std::fmt::Write as _;

const COLORS: [&str; 6] = [
    "#c0262d", "#3d7eff", "#16803c", "#c25e00", "#6a4c93", "#444",
];
const W: f64 = 760.0;
const H: f64 = 380.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 44.0;

/// A round number at or above `v` (1, 2, 2.5 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.max(1e-9).log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// `(seconds, RSS MiB)` rows of one CSV file.
fn read(path: &str) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(format_args!("{path}: {e}")));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split(',');
            let t = cols.next()?.parse().ok()?;
            let rss = cols.next()?.parse().ok()?;
            Some((t, rss))
        })
        .collect()
}

/// The SVG for `series` (label, points).
pub fn svg(title: &str, series: &[(String, Vec<(f64, f64)>)], cap: Option<f64>) -> String {
    let tmax = nice(
        series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
            .fold(1.0, f64::max),
    );
    let vmax = nice(
        series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
            .chain(cap)
            .fold(1.0, f64::max)
            * 1.05,
    );
    let x = |t: f64| LEFT + t / tmax * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / vmax) * (H - TOP - BOTTOM);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" \
         height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n"
    );
    for i in 0..=5 {
        let v = vmax * f64::from(i) / 5.0;
        let yy = y(v);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e3e5ea\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{v:.0}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for i in 0..=5 {
        let t = tmax * f64::from(i) / 5.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{t:.0} s</text>",
            x(t),
            H - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\" \
         fill=\"#555\">RSS (MiB)</text>",
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
    if let Some(cap) = cap {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\" \
             stroke-dasharray=\"5 4\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#888\">cap \
             (--max-rss {cap:.0} MiB)</text>",
            W - RIGHT,
            y(cap),
            y(cap),
            LEFT + 6.0,
            y(cap) - 5.0
        );
    }
    for (i, (label, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        let ly = TOP + 10.0 + 22.0 * i as f64;
        let lx = W - RIGHT + 16.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" \
             stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}

pub fn run(args: PlotArgs) {
    let series: Vec<(String, Vec<(f64, f64)>)> = args
        .series
        .iter()
        .map(|spec| match spec.split_once('=') {
            Some((label, path)) => (label.to_string(), read(path)),
            None => fail(format_args!("{spec:?}: expected LABEL=FILE.csv")),
        })
        .collect();
    let svg = svg(&args.title, &series, args.cap);
    std::fs::write(&args.out, svg).unwrap_or_else(|e| fail(format_args!("{:?}: {e}", args.out)));
    println!("ok: wrote {:?}", args.out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_numbers_round_up() {
        assert_eq!(nice(0.7), 1.0);
        assert_eq!(nice(3.0), 5.0);
        assert_eq!(nice(230.0), 250.0);
        assert_eq!(nice(1000.0), 1000.0);
    }

    #[test]
    fn an_svg_has_a_line_per_series() {
        let series = vec![
            ("a".to_string(), vec![(0.0, 10.0), (1.0, 20.0)]),
            ("b".to_string(), vec![(0.0, 5.0)]),
        ];
        let svg = svg("t", &series, Some(30.0));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("cap"));
    }
}
