//! Feeds arbitrary bytes to the parser and validator: nothing may panic.
//!
//! Run with `cargo fuzz run parse_documents` (nightly toolchain), seeding the
//! corpus from `testdata/compat/flagger/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = serin_spec::parse_documents("fuzz.yaml", text);
    if let Ok(documents) = serin_spec::load_documents("fuzz.yaml", text) {
        for document in &documents {
            if let Some(canary) = document.as_canary() {
                let _ = canary.analysis().steps();
            }
        }
        let catalog = serin_spec::Catalog::from_documents(documents);
        for canary in catalog.canaries() {
            let _ = catalog.resolve_for_run(canary);
        }
    }
});
