//! Canary files: arbitrary text through the parser, the validator, the
//! catalog's references and the mapping `serin run` and `serin serve` do.
//!
//! Properties:
//! - nothing panics, whatever the text (limits on size, depth, aliases and
//!   documents keep it bounded);
//! - every problem renders as `FILE: PATH: MESSAGE` with a message;
//! - a file that validates, and whose canary resolves and maps, gives the
//!   state machine a plan and the judges an analysis they accept: what
//!   `serin validate` passes must not be refused at run time for a reason
//!   validation could have named.

use serin_spec::{Catalog, Document};

const FILE: &str = "fuzz.yaml";

/// Runs the target on one input (UTF-8 text; other bytes are skipped, as
/// `serin validate` refuses a file that is not text before parsing it).
///
/// # Panics
///
/// When a property above fails.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What `serin validate` does: parse and validate every document.
    let (_, parse_problems) = serin_spec::parse_collecting(FILE, text);
    for problem in parse_problems {
        rendered(problem);
    }
    let documents = match serin_spec::load_documents(FILE, text) {
        Ok(documents) => documents,
        Err(problems) => {
            assert!(!problems.is_empty(), "an error without a problem");
            for problem in problems {
                rendered(problem);
            }
            return;
        }
    };
    for document in &documents {
        if let Document::Canary(canary) = document {
            let _ = canary.analysis().steps();
            let _ = canary.listen_addr();
        }
    }
    // What `serin run` and `serin serve` do next: resolve the references
    // and map each canary for the proxy, the state machine and the judges.
    let catalog = Catalog::from_documents(documents);
    for canary in catalog.canaries() {
        if let Err(problems) = catalog.resolve_for_run(canary) {
            for problem in problems {
                rendered(problem);
            }
        }
        match serin_server::Prepared::for_canary(&catalog, canary, FILE) {
            Ok(prepared) => {
                if let Err(error) = prepared.plan.validate() {
                    panic!("a valid canary maps to a plan the state machine refuses: {error}");
                }
                if let Err(error) = prepared.analysis.validate() {
                    panic!("a valid canary maps to an analysis the judges refuse: {error}");
                }
            }
            Err(error) => assert!(!error.to_string().is_empty(), "an empty error"),
        }
    }
}

fn rendered(problem: serin_spec::Problem) {
    assert!(
        !problem.message.trim().is_empty(),
        "a problem without a message at {:?}",
        problem.path
    );
    let line = problem.in_file(FILE).to_string();
    assert!(line.starts_with(FILE), "a problem without its file: {line}");
}
