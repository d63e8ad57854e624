//! No input makes the parser or validator panic: arbitrary text, and the
//! compatibility corpus with arbitrary edits (which stays close to real YAML and
//! so reaches deeper than random text does).

use std::{fs, path::PathBuf, sync::OnceLock};

use proptest::prelude::*;
use serin_spec::{Catalog, load_documents, parse_documents};

fn corpus() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/compat/flagger");
        let mut files: Vec<_> = fs::read_dir(dir)
            .expect("compat folder exists")
            .filter_map(|entry| fs::read_to_string(entry.ok()?.path()).ok())
            .collect();
        files.sort();
        files
    })
}

/// Parses, validates and resolves, ignoring the outcome: only panics matter.
fn exercise(text: &str) {
    let _ = parse_documents("fuzz.yaml", text);
    if let Ok(documents) = load_documents("fuzz.yaml", text) {
        for document in &documents {
            if let Some(canary) = document.as_canary() {
                let analysis = canary.analysis();
                let _ = analysis.steps();
                let _ = analysis.strategy();
                for metric in &analysis.metrics {
                    let _ = metric.direction();
                }
            }
        }
        let catalog = Catalog::from_documents(documents);
        for canary in catalog.canaries() {
            let _ = catalog.resolve_for_run(canary);
        }
    }
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let fragment = prop_oneof![
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("\n  ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("{".to_string()),
        Just("[".to_string()),
        Just("---\n".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e999".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("\"".to_string()),
        Just("builtin".to_string()),
        "\\PC{0,8}",
    ];
    prop_oneof![
        (any::<usize>(), fragment.clone()).prop_map(|(at, text)| Edit::Insert(at, text)),
        (any::<usize>(), 1..16usize).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), fragment).prop_map(|(at, text)| Edit::Replace(at, text)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match edit {
            Edit::Insert(at, fragment) => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, fragment.chars());
            }
            Edit::Delete(at, count) => {
                let at = at % len;
                let end = (at + count).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            Edit::Replace(at, fragment) => {
                let at = at % len;
                let end = (at + fragment.chars().count()).min(chars.len());
                if at <= end {
                    chars.splice(at..end, fragment.chars());
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        exercise(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([a-zA-Z]{1,8}: ?|- |  |\n|[0-9]{1,3}|\\[|\\]|\\{|\\}|&a |\\*a|---\n){0,80}") {
        exercise(&text);
    }

    #[test]
    fn edited_compat_files_never_panic(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let corpus = corpus();
        let original = file.get(corpus);
        exercise(&apply(original, &edits));
    }
}
