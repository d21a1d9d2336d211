//! The abuse demo's dashboard, in a real browser: starts `abuse server` (fair discipline) and a
//! short abuse run (two spammers, one well-behaved peer), loads the page in headless Chromium,
//! and checks that the charts received data (the page counts the samples it got in
//! `body[data-updates]` and sets `data-ready` after five). It also takes a screenshot: into the
//! target directory always, and over `docs/abuse-dashboard.png` (the README's) when
//! `REIN_UPDATE_SCREENSHOT=1` is set, so that a plain `cargo test` leaves the tree clean.
//!
//! Chromium must be installed (`apt-get install -y chromium`; `.ci/run` does it when it can),
//! or named by `REIN_CHROMIUM`. The test runs as root in CI, so Chromium gets `--no-sandbox`.
//! Bounded: the page is held for a few seconds by `?hold=N` (its load event waits for
//! `/hold`), each browser run is killed after 40 s, and the server stops itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ABUSE: &str = env!("CARGO_BIN_EXE_abuse");

/// The browser to drive: `REIN_CHROMIUM`, else the first of the usual names on the path.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("REIN_CHROMIUM") {
        return path.into();
    }
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        let found = std::env::var_os("PATH").map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        });
        if let Some(Some(path)) = found {
            return path;
        }
    }
    panic!(
        "the dashboard test needs a headless Chromium and found none: install it \
         (`apt-get install -y chromium`, as .ci/run does) or set REIN_CHROMIUM to its path"
    );
}

/// Kills the child when dropped, so a failing test leaves no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the browser on `url` with `args`, killing it after 40 s; returns its stdout.
fn browse(browser: &Path, args: &[&str], url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("rein-chromium-{}", std::process::id()));
    let mut child = Killed(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display())),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(40);
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "{} did not finish in 40 s",
            browser.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap()
}

/// Starts the server; returns it with its peer port and dashboard address.
fn server() -> (Killed, u16, String) {
    let mut child = Killed(
        Command::new(ABUSE)
            .args([
                "server",
                "--port",
                "0",
                "--dashboard-port",
                "0",
                "--qdisc",
                "fair",
            ])
            .args(["--secs", "50", "--threads", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start abuse server"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut line = || lines.next().expect("a line").expect("text");
    let listening = line();
    let port = listening
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the server said {listening:?}"));
    let dashboard = line();
    let url = dashboard
        .strip_prefix("dashboard on ")
        .unwrap_or_else(|| panic!("the server said {dashboard:?}"))
        .to_owned();
    (child, port, url)
}

fn client(port: u16, args: &[&str]) -> Killed {
    Killed(
        Command::new(ABUSE)
            .args(["client", "--port", &port.to_string(), "--secs", "25"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start abuse client"),
    )
}

/// The number in `attr="N"` in `dom`.
fn attribute(dom: &str, attr: &str) -> Option<u64> {
    let at = dom.find(&format!("{attr}=\""))? + attr.len() + 2;
    dom[at..].split('"').next()?.parse().ok()
}

#[test]
fn the_dashboard_shows_live_data_in_a_headless_browser() {
    let browser = chromium();
    let started = Instant::now();
    let (_server, port, url) = server();
    let _spammers = client(port, &["--spammers", "2", "--payload", "4MiB"]);
    let _legit = client(port, &["--legit", "--rate", "100"]);
    std::thread::sleep(Duration::from_secs(2));

    let dom = browse(&browser, &["--dump-dom"], &format!("{url}?hold=4"));
    let updates = attribute(&dom, "data-updates")
        .unwrap_or_else(|| panic!("no update counter in the page:\n{dom}"));
    assert!(
        updates >= 5,
        "only {updates} updates reached the page in 4 s"
    );
    assert!(dom.contains("data-ready=\"yes\""));
    assert!(
        dom.contains(">spammer<") && dom.contains(">legit<"),
        "the connections table has no peers:\n{dom}"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abuse-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &[
            "--window-size=1280,1000",
            &format!("--screenshot={}", shot.display()),
        ],
        &format!("{url}?hold=5"),
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "the screenshot is missing or blank ({size} bytes)"
    );
    if std::env::var_os("REIN_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/abuse-dashboard.png");
        std::fs::copy(&shot, &docs).expect("update docs/abuse-dashboard.png");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the browser test took {:?}",
        started.elapsed()
    );
}
