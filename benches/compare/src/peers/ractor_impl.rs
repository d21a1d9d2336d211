//! placeholder
use crate::workloads::{Outcome, Params, Workload};
pub fn run(_w: Workload, _p: &Params, _threads: usize) -> Result<Outcome, String> {
    Err("not written yet".into())
}
