//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rein::{Report, Runtime};
use std::time::Duration;

/// Every test that waits for quiescence waits at most this long, then fails instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(30);

pub fn runtime(threads: usize) -> Runtime {
    Runtime::builder()
        .threads(threads)
        .build()
        .expect("runtime")
}

/// Waits for quiescence within [`LIMIT`], panicking (with the metrics) if it does not come.
pub fn wait(rt: Runtime) -> Report {
    match rt.wait_timeout(LIMIT) {
        Ok(report) => report,
        Err(rt) => panic!("no quiescence within {LIMIT:?}: {:?}", rt.metrics()),
    }
}

/// Waits until `done()` holds, failing after [`LIMIT`] with `what` rather than hanging.
pub fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + LIMIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {LIMIT:?} waiting for {what}"
        );
        std::thread::yield_now();
    }
}
