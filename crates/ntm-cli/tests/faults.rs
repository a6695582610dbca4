//! The fault corpus (`cargo xtask faults`) against this build's `ntm`: every bad input, fault
//! and concurrency case fails cleanly and changes no existing file; signals leave a checkpoint
//! that resumes to the uninterrupted run's weights; kills leave loadable checkpoints. The full
//! acceptance run adds 30 kills: `cargo xtask faults`.

#[test]
fn every_bad_input_fault_and_race_is_handled() {
    let scratch = tempfile::tempdir().unwrap();
    let ntm = std::path::Path::new(env!("CARGO_BIN_EXE_ntm"));
    let results = xtask::faults::run_corpus(ntm, scratch.path(), 3).unwrap();
    let failed: Vec<_> = results.iter().filter(|r| !r.ok).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        results.len(),
        xtask::faults::table(&results)
    );
    assert!(results.len() >= 60, "only {} cases", results.len());
}
