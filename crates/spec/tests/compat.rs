//! Every Flagger document from Flagger's own repository parses and validates
//! with zero problems (the compatibility contract).

use std::{fs, path::PathBuf};

use serin_spec::{Document, load_documents, render_problems};

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/compat/flagger")
}

fn compat_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(compat_dir())
        .expect("compat folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&path).expect("readable file");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_flagger_document_validates_unchanged() {
    let files = compat_files();
    assert!(
        files.len() >= 121,
        "expected the whole corpus, found {}",
        files.len()
    );
    let mut report = String::new();
    let mut kinds = std::collections::BTreeMap::new();
    for (name, text) in &files {
        match load_documents(name, text) {
            Ok(documents) => {
                assert!(!documents.is_empty(), "{name}: no document");
                for document in documents {
                    *kinds.entry(document.kind()).or_insert(0) += 1;
                }
            }
            Err(problems) => report.push_str(&render_problems(name, &problems)),
        }
    }
    assert!(report.is_empty(), "compat files with problems:\n{report}");
    assert_eq!(kinds.get("Canary"), Some(&83));
    assert_eq!(kinds.get("MetricTemplate"), Some(&37));
    assert_eq!(kinds.get("AlertProvider"), Some(&1));
}

#[test]
fn compat_canaries_keep_their_meaning() {
    let text = fs::read_to_string(compat_dir().join("README-001-canary.yaml")).unwrap();
    let documents = load_documents("README-001-canary.yaml", &text).unwrap();
    let Some(Document::Canary(canary)) = documents.first() else {
        panic!("expected a canary");
    };
    let analysis = canary.analysis();
    assert_eq!(canary.spec.provider.as_deref(), Some("istio"));
    assert_eq!(
        analysis.steps(),
        (1..=10).map(|step| step * 5).collect::<Vec<u8>>()
    );
    assert_eq!(analysis.threshold(), 10);
    assert_eq!(analysis.metrics.len(), 3);
    assert!(analysis.metrics[2].builtin().is_none());
    assert_eq!(analysis.webhooks[0].metadata["type"], "helmv3");

    let text =
        fs::read_to_string(compat_dir().join("test_linkerd_test-steps-115-canary.yaml")).unwrap();
    let documents = load_documents("steps.yaml", &text).unwrap();
    let canary = documents[0].as_canary().unwrap();
    assert_eq!(canary.analysis().steps(), [10, 20, 30, 40, 50, 60]);
}
