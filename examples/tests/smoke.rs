//! Runs every example at a small size and checks that it validates its own result.

use std::process::Command;

fn run(exe: &str, args: &[&str]) {
    for threads in ["1", "2"] {
        let out = Command::new(exe)
            .args(args)
            .args(["--threads", threads])
            .output()
            .expect("start the example");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{exe} {args:?} --threads {threads} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.lines().any(|l| l.starts_with("ok:")),
            "{exe} printed no ok line:\n{stdout}"
        );
    }
}

#[test]
fn ring() {
    run(
        env!("CARGO_BIN_EXE_ring"),
        &["--hops", "20000", "--actors", "53"],
    );
}

#[test]
fn counting() {
    run(env!("CARGO_BIN_EXE_counting"), &["--messages", "100000"]);
}

#[test]
fn pingpong() {
    run(env!("CARGO_BIN_EXE_pingpong"), &["--round-trips", "20000"]);
}

#[test]
fn skynet() {
    run(env!("CARGO_BIN_EXE_skynet"), &["--leaves", "10000"]);
}

#[test]
fn actor_overhead() {
    run(env!("CARGO_BIN_EXE_actor_overhead"), &["--actors", "10000"]);
}

#[test]
fn fanin_with_and_without_backpressure() {
    let exe = env!("CARGO_BIN_EXE_fanin");
    let small = [
        "--messages",
        "20000",
        "--interval-ms",
        "50",
        "--work-ns",
        "200",
    ];
    run(exe, &small);
    run(exe, &[&small[..], &["--no-backpressure"]].concat());
}

#[test]
fn slowdown_over_loopback() {
    run(env!("CARGO_BIN_EXE_slowdown"), &["--seconds", "0.3"]);
}

#[test]
fn echo_over_loopback() {
    run(env!("CARGO_BIN_EXE_echo"), &["--bytes", "4194304"]);
}

/// A CA and a certificate for localhost it signed, written as PEM files: (dir, ca, cert, key).
fn tls_files() -> (std::path::PathBuf, String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "smoke CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("rein-smoke-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, body: String| {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    };
    let files = (
        write("ca.pem", ca_cert.pem()),
        write("cert.pem", leaf.pem()),
        write("key.pem", key.serialize_pem()),
    );
    (dir, files.0, files.1, files.2)
}

#[test]
fn tls_echo_server_and_client() {
    use std::io::{BufRead, BufReader};
    let exe = env!("CARGO_BIN_EXE_tls_echo");
    let help = Command::new(exe).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("server"));
    let (dir, ca, cert, key) = tls_files();
    let mut server = Command::new(exe)
        .args(["server", "--port", "0", "--cert", &cert, "--key", &key])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .split_whitespace()
        .find_map(|w| w.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let port = port.to_string();
    for threads in ["1", "2"] {
        let out = Command::new(exe)
            .args(["--threads", threads, "client", "--port", &port, "--ca", &ca])
            .args(["--bytes", "4194304"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.lines().any(|l| l.starts_with("ok:")),
            "tls_echo client --threads {threads} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("TLSv1_3"), "{stdout}");
    }
    // A client that does not know the CA fails, saying why.
    let out = Command::new(exe)
        .args(["client", "--port", &port, "--bytes", "10"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(dir);
    assert!(!out.status.success(), "Mozilla's roots trusted a test CA");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn chat_stays_live_with_a_client_that_never_reads() {
    run(env!("CARGO_BIN_EXE_chat"), &["--self-check", "30"]);
}

#[test]
fn abuse_describes_its_subcommands() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_abuse"))
            .args(args)
            .output()
            .expect("run abuse --help");
        assert!(out.status.success(), "abuse {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    assert!(top.contains("server") && top.contains("client") && top.contains("plot"));
    let server = help(&["server", "--help"]);
    for flag in [
        "--qdisc",
        "--dashboard-port",
        "--max-rss",
        "--work-ms-per-mib",
    ] {
        assert!(server.contains(flag), "server --help lacks {flag}");
    }
    assert!(help(&["client", "--help"]).contains("--spammers"));
}

#[test]
fn outside_feed() {
    run(env!("CARGO_BIN_EXE_outside_feed"), &["--messages", "20000"]);
}

#[test]
fn outside_feed_with_a_slow_actor_both_ways() {
    for how in [&[][..], &["--plain-send"][..]] {
        let mut args = vec!["--messages", "20000", "--work-ns", "200"];
        args.extend_from_slice(how);
        run(env!("CARGO_BIN_EXE_outside_feed"), &args);
    }
}

#[test]
fn tokio_bridge() {
    run(
        env!("CARGO_BIN_EXE_tokio_bridge"),
        &["--tasks", "4", "--items", "5000"],
    );
}

#[test]
fn every_example_describes_itself_and_offers_only_what_matters() {
    let examples = [
        ("actor_overhead", env!("CARGO_BIN_EXE_actor_overhead")),
        ("counting", env!("CARGO_BIN_EXE_counting")),
        ("echo", env!("CARGO_BIN_EXE_echo")),
        ("fanin", env!("CARGO_BIN_EXE_fanin")),
        ("http_client", env!("CARGO_BIN_EXE_http_client")),
        ("http_files", env!("CARGO_BIN_EXE_http_files")),
        ("http_hello", env!("CARGO_BIN_EXE_http_hello")),
        ("idle_cpu", env!("CARGO_BIN_EXE_idle_cpu")),
        ("outside_feed", env!("CARGO_BIN_EXE_outside_feed")),
        ("pingpong", env!("CARGO_BIN_EXE_pingpong")),
        ("pipeline", env!("CARGO_BIN_EXE_pipeline")),
        ("ring", env!("CARGO_BIN_EXE_ring")),
        ("skynet", env!("CARGO_BIN_EXE_skynet")),
        ("slowdown", env!("CARGO_BIN_EXE_slowdown")),
        ("tokio_bridge", env!("CARGO_BIN_EXE_tokio_bridge")),
    ];
    for (name, exe) in examples {
        let out = Command::new(exe)
            .arg("--help")
            .output()
            .expect("run --help");
        assert!(out.status.success(), "{name} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        let about = help.lines().next().unwrap_or_default();
        assert!(
            !about.is_empty() && !about.starts_with("Usage") && !about.contains("shared by every"),
            "{name} --help does not start with its own description:\n{help}"
        );
        // Backpressure off only means something where a mailbox can outgrow its bound.
        assert_eq!(
            help.contains("--no-backpressure"),
            matches!(name, "fanin" | "pipeline"),
            "{name} --help and --no-backpressure"
        );
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_skynet"))
        .args(["--leaves", "12"])
        .output()
        .expect("start skynet");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of 10"));
}

#[test]
fn http_hello_answers_its_own_client() {
    run(env!("CARGO_BIN_EXE_http_hello"), &["--self-check", "200"]);
}

/// Starts `http_files` on a free port serving `dir`; returns it and its address.
fn http_files(dir: &std::path::Path) -> (std::process::Child, String) {
    http_files_with(dir, &[])
}

/// `http_files` with extra arguments; returns it and its address (`host:port`).
fn http_files_with(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = Command::new(env!("CARGO_BIN_EXE_http_files"))
        .args(["--port", "0", "--threads", "2", "--dir"])
        .arg(dir)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start http_files");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|url| url.split_once("://"))
        .map(|(_, addr)| addr)
        .unwrap_or_else(|| panic!("http_files said {line:?}"))
        .to_owned();
    (server, addr)
}

#[test]
fn http_files_serves_https_with_a_certificate_and_key() {
    let (dir, ca, cert, key) = tls_files();
    let file = dir.join("data.bin");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let (mut server, addr) = http_files_with(&dir, &["--tls-cert", &cert, "--tls-key", &key]);
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "30"])
        .args(["--cacert", &ca, "--resolve"])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg(format!("https://localhost:{port}/data.bin"))
        .output();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("curl is needed for this test (apt-get install -y curl)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == data,
        "the file came back different over HTTPS"
    );
}

#[test]
fn http_client_downloads_and_uploads_through_http_files() {
    let dir = std::env::temp_dir().join(format!("rein-http-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.bin");
    std::fs::write(
        &file,
        (0..3_000_000u32)
            .map(|i| (i * 7 % 256) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let (mut server, addr) = http_files(&dir);
    let client = env!("CARGO_BIN_EXE_http_client");
    let file_arg = file.to_str().unwrap();
    let url = format!("http://{addr}/data.bin");
    let stream = format!("http://{addr}/stream?bytes=5000000");
    let upload = format!("http://{addr}/upload");
    let runs: [&[&str]; 3] = [
        &["--url", &url, "--expect-file", file_arg],
        &["--url", &stream],
        &["--url", &upload, "--upload", "4000000"],
    ];
    for args in runs {
        let out = Command::new(client)
            .args(args)
            .args(["--threads", "2", "--timeout", "60"])
            .output()
            .expect("start http_client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.lines().any(|l| l.starts_with("ok:")) {
            let _ = server.kill();
            panic!(
                "http_client {args:?}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn http_examples_describe_themselves() {
    for (exe, about) in [
        (env!("CARGO_BIN_EXE_http_hello"), "Hello, World!"),
        (
            env!("CARGO_BIN_EXE_http_files"),
            "streaming HTTP/1.1 file server",
        ),
        (
            env!("CARGO_BIN_EXE_http_client"),
            "Streaming HTTP/1.1 client",
        ),
    ] {
        let out = Command::new(exe)
            .arg("--help")
            .output()
            .expect("run --help");
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(about),
            "{exe} --help"
        );
    }
}
