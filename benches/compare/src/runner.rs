//! The matrix runner: re-executes this binary once per run, collects the
//! children's `RESULT` lines and prints medians as markdown (and CSV).
//!
//! Each run gets a fresh process so peak RSS (`VmHWM`) belongs to exactly one
//! framework and workload, and so no framework inherits another's threads or
//! allocator state. Repetitions are interleaved (rep 1 of everything, then
//! rep 2, ...) so that slow drift on a shared machine spreads over all cells.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::workloads::{self, Params, Workload};
use crate::Framework;

/// Flags of `rein-compare matrix`.
#[derive(clap::Args)]
pub struct MatrixArgs {
    /// Frameworks to run (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    frameworks: Vec<Framework>,
    /// Workloads to run (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Vec<Workload>,
    /// Repetitions of every cell; the tables show medians.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Worker threads for every framework.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repeat the matrix for each of these thread counts (e.g. 1,2,4,8,16);
    /// overrides --threads.
    #[arg(long, value_delimiter = ',')]
    scaling: Vec<usize>,
    /// Also write every run as a CSV row to this file.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
    /// Also write the markdown tables to this file.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
    /// Kill a run that takes longer than this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    #[command(flatten)]
    params: Params,
}

/// One child run's outcome.
#[derive(Clone, Debug)]
struct Run {
    threads: usize,
    framework: Framework,
    workload: Workload,
    rep: usize,
    result: Result<Measured, String>,
}

#[derive(Clone, Debug)]
struct Measured {
    secs: f64,
    rate: f64,
    unit: String,
    rss_kib: u64,
    value: u64,
}

/// Runs the matrix; non-zero exit when any run failed.
pub fn run_matrix(mut m: MatrixArgs) -> ExitCode {
    if let Err(e) = m.params.check() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if m.frameworks.is_empty() {
        m.frameworks = Framework::ALL.to_vec();
    }
    if m.workloads.is_empty() {
        m.workloads = Workload::ALL.to_vec();
    }
    let threads = if m.scaling.is_empty() {
        vec![m.threads]
    } else {
        m.scaling.clone()
    };
    if threads.contains(&0) || m.reps == 0 {
        eprintln!("error: thread counts and --reps must be at least 1");
        return ExitCode::from(2);
    }
    // Calibrate the busy work once, so every child spins the same amount.
    if m.params.spin_per_us.is_none() && m.workloads.contains(&Workload::Fanin) {
        let s = workloads::calibrate_spin();
        eprintln!("calibrated spin loop: {s:.1} iterations/us");
        m.params.spin_per_us = Some(s);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find own executable: {e}");
            return ExitCode::from(2);
        }
    };
    let total = threads.len() * m.reps * m.workloads.len() * m.frameworks.len();
    let mut runs = Vec::with_capacity(total);
    let started = Instant::now();
    for &t in &threads {
        for rep in 0..m.reps {
            for &w in &m.workloads {
                for &f in &m.frameworks {
                    let result = run_child(&exe, f, w, t, &m.params, m.timeout_secs);
                    match &result {
                        Ok(r) => eprintln!(
                            "[{:>3}/{total}] threads={t} rep={} {:<19} {:<13} {:>9.4} s {:>8} KiB",
                            runs.len() + 1,
                            rep + 1,
                            w.name(),
                            f.name(),
                            r.secs,
                            r.rss_kib
                        ),
                        Err(e) => eprintln!(
                            "[{:>3}/{total}] threads={t} rep={} {:<19} {:<13} FAILED: {e}",
                            runs.len() + 1,
                            rep + 1,
                            w.name(),
                            f.name(),
                        ),
                    }
                    runs.push(Run {
                        threads: t,
                        framework: f,
                        workload: w,
                        rep,
                        result,
                    });
                }
            }
        }
    }
    eprintln!("matrix took {:.1} s", started.elapsed().as_secs_f64());
    let md = markdown(&runs, &threads, &m);
    print!("{md}");
    let mut ok = true;
    if let Some(path) = &m.markdown {
        ok &= write_file(path, &md);
    }
    if let Some(path) = &m.csv {
        ok &= write_file(path, &csv(&runs));
    }
    if !ok || runs.iter().any(|r| r.result.is_err()) {
        eprintln!("error: some runs failed (see FAIL cells)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn write_file(path: &std::path::Path, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: writing {}: {e}", path.display());
            false
        }
    }
}

/// Spawns `exe one ...`, waits up to `timeout_secs`, parses its RESULT line.
fn run_child(
    exe: &std::path::Path,
    f: Framework,
    w: Workload,
    threads: usize,
    params: &Params,
    timeout_secs: u64,
) -> Result<Measured, String> {
    let mut child = Command::new(exe)
        .arg("one")
        .arg(format!("--framework={}", f.name()))
        .arg(format!("--workload={}", w.name()))
        .arg(format!("--threads={threads}"))
        .args(params.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    // Drain both pipes on threads so a chatty child cannot block on them.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let status = loop {
        match child.try_wait().map_err(|e| format!("wait: {e}"))? {
            Some(s) => break Some(s),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let last_err = || {
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no stderr)")
            .to_string()
    };
    match status {
        None => return Err(format!("timeout after {timeout_secs} s")),
        Some(s) if !s.success() => return Err(format!("{s}: {}", last_err())),
        Some(_) => {}
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("no RESULT line; {}", last_err()))
        .and_then(parse_result)
}

/// Parses the `key=value` pairs of a RESULT line.
fn parse_result(line: &str) -> Result<Measured, String> {
    let kv: BTreeMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|t| t.split_once('='))
        .collect();
    let get = |k: &str| kv.get(k).copied().ok_or(format!("RESULT lacks {k}"));
    let num = |k: &str| -> Result<f64, String> {
        get(k)?.parse().map_err(|e| format!("RESULT {k}: {e}"))
    };
    Ok(Measured {
        secs: num("secs")?,
        rate: num("rate")?,
        unit: get("unit")?.to_string(),
        rss_kib: num("rss_kib")? as u64,
        value: num("value")? as u64,
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median of one measured field over a cell's successful runs.
fn cell(
    runs: &[Run],
    t: usize,
    f: Framework,
    w: Workload,
    field: fn(&Measured) -> f64,
) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.threads == t && r.framework == f && r.workload == w)
            .filter_map(|r| r.result.as_ref().ok().map(field))
            .collect(),
    )
}

fn failed(runs: &[Run], t: usize, f: Framework, w: Workload) -> usize {
    runs.iter()
        .filter(|r| r.threads == t && r.framework == f && r.workload == w)
        .filter(|r| r.result.is_err())
        .count()
}

/// Human-readable rate: 1234567 -> "1.23 M".
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The markdown report: per thread count, time, rein/peer ratio, peak RSS
/// and throughput tables.
fn markdown(runs: &[Run], threads: &[usize], m: &MatrixArgs) -> String {
    let fw = &m.frameworks;
    let mut s = String::new();
    let header = |s: &mut String, first: &str, cols: &[Framework]| {
        let _ = write!(s, "| {first} |");
        for f in cols {
            let _ = write!(s, " {} |", f.name());
        }
        s.push_str("\n|---|");
        for _ in cols {
            s.push_str("---:|");
        }
        s.push('\n');
    };
    // A cell's text: the formatted median, with failures noted.
    let text = |t, f, w, v: Option<f64>, fmt: &dyn Fn(f64) -> String| {
        let bad = failed(runs, t, f, w);
        match (v, bad) {
            (None, _) => "FAIL".to_string(),
            (Some(v), 0) => fmt(v),
            (Some(v), n) => format!("{} ({n} FAIL)", fmt(v)),
        }
    };
    for &t in threads {
        let _ = writeln!(
            s,
            "\n### threads = {t}: median wall time in ms of {} run(s) (lower is better)\n",
            m.reps
        );
        header(&mut s, "workload", fw);
        for &w in &m.workloads {
            let _ = write!(s, "| {} |", w.name());
            for &f in fw {
                let v = cell(runs, t, f, w, |r| r.secs * 1e3);
                let _ = write!(s, " {} |", text(t, f, w, v, &|v| format!("{v:.1}")));
            }
            s.push('\n');
        }
        let peers: Vec<Framework> = fw
            .iter()
            .copied()
            .filter(|f| *f != Framework::Rein)
            .collect();
        if fw.contains(&Framework::Rein) && !peers.is_empty() {
            let _ = writeln!(
                s,
                "\n### threads = {t}: rein time / peer time (below 1.00 = rein faster)\n"
            );
            header(&mut s, "workload", &peers);
            for &w in &m.workloads {
                let _ = write!(s, "| {} |", w.name());
                let rein = cell(runs, t, Framework::Rein, w, |r| r.secs);
                for &f in &peers {
                    match (rein, cell(runs, t, f, w, |r| r.secs)) {
                        (Some(a), Some(b)) if b > 0.0 => {
                            let _ = write!(s, " {:.2} |", a / b);
                        }
                        _ => s.push_str(" n/a |"),
                    }
                }
                s.push('\n');
            }
        }
        let _ = writeln!(s, "\n### threads = {t}: median peak RSS (VmHWM) in MiB\n");
        header(&mut s, "workload", fw);
        for &w in &m.workloads {
            let _ = write!(s, "| {} |", w.name());
            for &f in fw {
                let v = cell(runs, t, f, w, |r| r.rss_kib as f64 / 1024.0);
                let _ = write!(s, " {} |", text(t, f, w, v, &|v| format!("{v:.1}")));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\n### threads = {t}: median throughput\n");
        header(&mut s, "workload (unit)", fw);
        for &w in &m.workloads {
            let unit = m.params.work_units(w).1;
            let _ = write!(s, "| {} ({unit}) |", w.name());
            for &f in fw {
                let v = cell(runs, t, f, w, |r| r.rate);
                let _ = write!(s, " {} |", text(t, f, w, v, &si));
            }
            s.push('\n');
        }
    }
    s
}

/// One CSV row per run, failures included (status column).
fn csv(runs: &[Run]) -> String {
    let mut s =
        String::from("threads,framework,workload,rep,status,secs,rate,unit,rss_kib,value\n");
    for r in runs {
        let head = format!(
            "{},{},{},{}",
            r.threads,
            r.framework.name(),
            r.workload.name(),
            r.rep + 1
        );
        match &r.result {
            Ok(m) => {
                let _ = writeln!(
                    s,
                    "{head},ok,{:.6},{:.1},{},{},{}",
                    m.secs, m.rate, m.unit, m.rss_kib, m.value
                );
            }
            Err(e) => {
                let reason = e.replace([',', '\n', '"'], " ");
                let _ = writeln!(s, "{head},fail: {reason},,,,,");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_line() {
        let m = parse_result(
            "framework=tokio workload=counting threads=2 secs=0.5 rate=2000000.0 unit=msgs/s rss_kib=4096 value=1000000",
        )
        .unwrap();
        assert_eq!(m.secs, 0.5);
        assert_eq!(m.unit, "msgs/s");
        assert_eq!(m.rss_kib, 4096);
        assert_eq!(m.value, 1_000_000);
        assert!(parse_result("secs=1").is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
