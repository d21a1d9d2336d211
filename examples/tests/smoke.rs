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

#[test]
fn outside_feed() {
    run(env!("CARGO_BIN_EXE_outside_feed"), &["--messages", "20000"]);
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
