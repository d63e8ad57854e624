//! How problems of bad files read: one line per problem, `FILE: PATH: MESSAGE`,
//! all of them at once. Snapshots keep the wording stable.

use std::{fs, path::PathBuf};

use serin_spec::{load_documents, render_problems};

fn rendered(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let text = fs::read_to_string(path).expect("test file exists");
    match load_documents(file, &text) {
        Ok(_) => panic!("{file} should be refused"),
        Err(problems) => render_problems(file, &problems),
    }
}

#[test]
fn bad_analysis() {
    insta::assert_snapshot!(rendered("bad-analysis.yaml"));
}

#[test]
fn bad_match() {
    insta::assert_snapshot!(rendered("bad-match.yaml"));
}

#[test]
fn bad_types() {
    insta::assert_snapshot!(rendered("bad-types.yaml"));
}

#[test]
fn bad_bundle() {
    insta::assert_snapshot!(rendered("bad-bundle.yaml"));
}

#[test]
fn missing_builtin() {
    insta::assert_snapshot!(rendered("missing-builtin.yaml"));
}

#[test]
fn bad_syntax() {
    insta::assert_snapshot!(rendered("bad-syntax.yaml"));
}
