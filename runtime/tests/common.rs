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
