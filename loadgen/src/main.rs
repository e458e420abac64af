//! `loadgen`: the load generator for the scenarios of WORKLOADS.md.
//!
//! NOT IMPLEMENTED YET: the scenarios land with the "Prove the numbers" issue.
//! Until then this binary refuses to run rather than print made-up figures.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("loadgen is not implemented yet (see the \"Prove the numbers\" issue); it measures nothing")
}
