//! Hostile input is refused with bounded work: each test asserts the refusal
//! itself, not timing, so it is stable on a loaded machine.

use serin_spec::{Problem, parse::MAX_FILE_BYTES, parse_documents};

fn refusal(text: &str) -> Vec<Problem> {
    let problems =
        parse_documents("hostile.yaml", text).expect_err("hostile input must be refused");
    eprintln!("{}", problems[0]);
    problems
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let text = format!("# {}\n", "x".repeat(MAX_FILE_BYTES));
    let problems = refusal(&text);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].message.contains("larger than 4 MiB"),
        "{}",
        problems[0]
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 10_000;
    let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let problems = refusal(&flow);
    assert!(
        problems[0].message.contains("nested deeper than"),
        "{}",
        problems[0]
    );

    let mut block = String::new();
    for level in 0..200 {
        block.push_str(&" ".repeat(level));
        block.push_str("a:\n");
    }
    let problems = refusal(&block);
    assert!(
        problems[0].message.contains("nested deeper than"),
        "{}",
        problems[0]
    );
}

#[test]
fn alias_bombs_are_refused() {
    // "Billion laughs": ten levels of ten aliases each expand to 10^10 nodes.
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        let list = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{list}]\n"));
    }
    let problems = refusal(&text);
    assert!(
        problems[0].message.contains("alias bomb"),
        "{}",
        problems[0]
    );
}

#[test]
fn document_storms_are_refused() {
    let text = "apiVersion: x\n---\n".repeat(10_000);
    let problems = refusal(&text);
    assert!(
        problems[0].message.contains("more than 256 documents"),
        "{}",
        problems[0]
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let text = "apiVersion: flagger.app/v1beta1\nkind: Canary\nspec:\n  analysis: [\n";
    let problems = refusal(text);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("line "), "{}", problems[0]);
    assert!(problems[0].message.contains("column "), "{}", problems[0]);
    assert!(!problems[0].message.contains('\n'));
}

#[test]
fn unknown_fields_are_all_reported() {
    let mut text = String::from("apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata:\n");
    for index in 0..500 {
        text.push_str(&format!("  bogus{index}: 1\n"));
    }
    assert_eq!(refusal(&text).len(), 500);
}

#[test]
fn wrong_values_stop_after_a_bound() {
    // Each wrong value costs a re-read of the document, so their number is capped.
    let mut text =
        String::from("apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata:\n  labels:\n");
    for index in 0..500 {
        text.push_str(&format!("    label{index}: [1]\n"));
    }
    let problems = refusal(&text);
    assert_eq!(problems.len(), 32);
    assert!(
        problems[0].message.contains("expected a string"),
        "{}",
        problems[0]
    );
}
