//! The conformance suites in `tests/`, run against the real component: the same run as
//! `scim-host conformance`, so `cargo test` fails when any case does.

use std::path::PathBuf;

use scim_host::component::shared_embedded;
use scim_host::conformance;

#[test]
fn every_conformance_case_passes() {
    let host = shared_embedded().expect("the embedded component loads");
    let suites = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests");
    let mut report = Vec::new();
    let failed = conformance::run_all(host, &suites, &mut report).expect("the suites load");
    let report = String::from_utf8_lossy(&report);
    println!("{report}");
    assert_eq!(failed, 0, "failing conformance cases:\n{report}");
}
