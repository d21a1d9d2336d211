#!/usr/bin/env python3
"""Turn `rein-compare matrix --csv` output into SVG charts.

    python3 benches/compare/plot.py results.csv [--scaling scaling.csv] [--out DIR]

Writes, into DIR (default: next to results.csv):
  * time-<workload>.svg: median wall time per framework (bars, with a min-max
    whisker over the repetitions and the median peak RSS under each bar), one
    chart per workload, for one thread count (--threads; by default the
    smallest one in the file);
  * scaling-<workload>.svg: median time against worker threads (1, 2, 4, ...
    on a log2 axis, time on a log axis), one line per framework, when a
    scaling CSV with at least two thread counts is given (a matrix CSV run
    with --scaling works as either input).

Only the standard library is used, so the script runs wherever python3 does
(CI, a fresh machine); the SVG is written by hand.
"""

import argparse
import csv
import math
import os
import statistics
import sys
from collections import defaultdict
from xml.sax.saxutils import escape

# Table order of the runner, and one colour per framework (rein stands out).
FRAMEWORKS = ["tokio", "tokio-bounded", "actix", "ractor", "kameo", "rein"]
COLOURS = {
    "tokio": "#4e79a7",
    "tokio-bounded": "#76b7b2",
    "actix": "#f28e2b",
    "ractor": "#59a14f",
    "kameo": "#b07aa1",
    "rein": "#e15759",
}
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def load(path):
    """Successful runs as {(threads, workload, framework): [(secs, rss_kib)]}."""
    runs = defaultdict(list)
    failed = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("status") != "ok":
                failed += 1
                continue
            key = (int(row["threads"]), row["workload"], row["framework"])
            runs[key].append((float(row["secs"]), int(row["rss_kib"] or 0)))
    if failed:
        print(f"{path}: skipped {failed} failed run(s)", file=sys.stderr)
    return runs


def order(names):
    """Frameworks in table order, unknown ones last."""
    known = [f for f in FRAMEWORKS if f in names]
    return known + sorted(n for n in names if n not in FRAMEWORKS)


def nice_ticks(hi, n=5):
    """Round tick values from 0 to at least `hi`."""
    if hi <= 0:
        return [0, 1]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [0.0]
    while ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def fmt(v):
    if v == 0:
        return "0"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def svg(width, height, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} font-size="12">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n{body}</svg>\n'
    )


def bar_chart(workload, threads, cells):
    """cells: [(framework, [(secs, rss)])] -> SVG text."""
    w, h = 640, 380
    left, right, top, bottom = 70, 20, 50, 80
    pw, ph = w - left - right, h - top - bottom
    stats = []
    for fw, vals in cells:
        ms = [s * 1e3 for s, _ in vals]
        rss = statistics.median(r for _, r in vals) / 1024
        stats.append((fw, statistics.median(ms), min(ms), max(ms), rss, len(ms)))
    ticks = nice_ticks(max(s[3] for s in stats))
    top_v = ticks[-1]
    y = lambda v: top + ph - v / top_v * ph  # noqa: E731
    out = [
        f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
        f"{escape(workload)}: median wall time, {threads} thread(s)</text>",
        f'<text x="{w / 2}" y="38" text-anchor="middle" fill="#555">'
        "lower is better; whisker = min to max over repetitions</text>",
    ]
    for t in ticks:
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>'
        )
    out.append(
        f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" text-anchor="middle">ms</text>'
    )
    slot = pw / len(stats)
    bw = min(60, slot * 0.6)
    for i, (fw, med, lo, hi, rss, n) in enumerate(stats):
        cx = left + slot * (i + 0.5)
        colour = COLOURS.get(fw, "#888")
        out.append(
            f'<rect x="{cx - bw / 2:.1f}" y="{y(med):.1f}" width="{bw:.1f}" '
            f'height="{top + ph - y(med):.1f}" fill="{colour}">'
            f"<title>{escape(fw)}: median {med:.1f} ms over {n} run(s), "
            f"min {lo:.1f}, max {hi:.1f}, peak RSS {rss:.1f} MiB</title></rect>"
        )
        out.append(
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(hi):.1f}" y2="{y(lo):.1f}" stroke="#333"/>'
            f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{y(hi):.1f}" y2="{y(hi):.1f}" stroke="#333"/>'
            f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{y(lo):.1f}" y2="{y(lo):.1f}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{cx:.1f}" y="{y(hi) - 5:.1f}" text-anchor="middle">{fmt(med)}</text>'
            f'<text x="{cx:.1f}" y="{top + ph + 16}" text-anchor="middle">{escape(fw)}</text>'
            f'<text x="{cx:.1f}" y="{top + ph + 31}" text-anchor="middle" fill="#555">'
            f"{rss:.1f} MiB</text>"
        )
    out.append(
        f'<line x1="{left}" x2="{w - right}" y1="{top + ph}" y2="{top + ph}" stroke="#333"/>'
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle" fill="#555">'
        "under each bar: median peak RSS (VmHWM)</text>"
    )
    return svg(w, h, "\n".join(out) + "\n")


def scaling_chart(workload, series):
    """series: {framework: {threads: median_ms}} -> SVG text (log-log)."""
    w, h = 640, 400
    left, right, top, bottom = 70, 130, 50, 50
    pw, ph = w - left - right, h - top - bottom
    xs = sorted({t for pts in series.values() for t in pts})
    ys = [v for pts in series.values() for v in pts.values()]
    lx0, lx1 = math.log2(xs[0]), math.log2(xs[-1])
    ly0 = math.floor(math.log10(min(ys)) * 4) / 4
    ly1 = math.ceil(math.log10(max(ys)) * 4) / 4
    if ly1 == ly0:
        ly1 += 0.25
    x = lambda t: left + (math.log2(t) - lx0) / ((lx1 - lx0) or 1) * pw  # noqa: E731
    y = lambda v: top + ph - (math.log10(v) - ly0) / (ly1 - ly0) * ph  # noqa: E731
    out = [
        f'<text x="{(left + w - right) / 2}" y="22" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(workload)}: median wall time vs worker threads</text>',
        f'<text x="{(left + w - right) / 2}" y="38" text-anchor="middle" fill="#555">'
        "log-log; lower is better</text>",
    ]
    for t in xs:
        out.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>'
            f'<text x="{x(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t}</text>'
        )
    decade = math.floor(ly0)
    while decade <= ly1:
        for m in (1, 2, 3, 5):
            v = m * 10**decade
            lv = math.log10(v)
            if ly0 - 1e-9 <= lv <= ly1 + 1e-9:
                out.append(
                    f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                    f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{fmt(v)}</text>'
                )
        decade += 1
    out.append(
        f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" text-anchor="middle">ms</text>'
        f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">worker threads</text>'
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>'
    )
    for i, fw in enumerate(order(series)):
        pts = sorted(series[fw].items())
        colour = COLOURS.get(fw, "#888")
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        width = 3 if fw == "rein" else 2
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}"/>'
        )
        for t, v in pts:
            out.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(fw)}, {t} thread(s): {v:.1f} ms</title></circle>"
            )
        ly = top + 10 + i * 20
        out.append(
            f'<line x1="{w - right + 12}" x2="{w - right + 34}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="{width}"/>'
            f'<text x="{w - right + 40}" y="{ly + 4}">{escape(fw)}</text>'
        )
    return svg(w, h, "\n".join(out) + "\n")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="CSV written by `rein-compare matrix --csv`")
    ap.add_argument("--scaling", help="CSV of a `--scaling 1,2,4,...` matrix run")
    ap.add_argument("--threads", type=int, help="thread count for the bar charts")
    ap.add_argument("--out", help="output directory (default: the CSV's directory)")
    args = ap.parse_args()

    out = args.out or os.path.dirname(os.path.abspath(args.csv))
    os.makedirs(out, exist_ok=True)
    runs = load(args.csv)
    if not runs:
        sys.exit(f"{args.csv}: no successful runs to plot")
    threads = args.threads or min(t for t, _, _ in runs)
    workloads = []
    for _, wl, _ in runs:
        if wl not in workloads:
            workloads.append(wl)
    for wl in workloads:
        fws = order({fw for t, w, fw in runs if t == threads and w == wl})
        if fws:
            cells = [(fw, runs[(threads, wl, fw)]) for fw in fws]
            write(os.path.join(out, f"time-{wl}.svg"), bar_chart(wl, threads, cells))

    if args.scaling:
        sruns = load(args.scaling)
        if len({t for t, _, _ in sruns}) < 2:
            sys.exit(f"{args.scaling}: a scaling plot needs at least two thread counts")
        for wl in dict.fromkeys(w for _, w, _ in sruns):
            series = defaultdict(dict)
            for (t, w, fw), vals in sruns.items():
                if w == wl:
                    series[fw][t] = statistics.median(s for s, _ in vals) * 1e3
            write(os.path.join(out, f"scaling-{wl}.svg"), scaling_chart(wl, series))


if __name__ == "__main__":
    main()
