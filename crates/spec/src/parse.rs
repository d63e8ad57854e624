//! Reading YAML text into documents, refusing hostile input early.
//!
//! The YAML is read into a generic tree under strict budgets (size, depth,
//! aliases, document count), then each document is typed by `de.rs`, which
//! reports unknown fields and wrong values with their paths.

use serde_json::Value;

use crate::{
    alert::AlertProvider,
    canary::Canary,
    de::deserialize_collecting,
    document::{API_VERSIONS, Document, KINDS},
    problem::{Path, Problem},
    suggest,
    template::MetricTemplate,
    validate,
};

/// Largest file accepted. Real canary files are a few KiB.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted. Canary documents nest
/// about ten levels deep.
pub const MAX_DEPTH: usize = 48;
/// Most documents accepted in one file.
pub const MAX_DOCUMENTS: usize = 256;
/// Most aliases (`*name`) accepted in one file.
pub const MAX_ALIASES: usize = 1_000;
/// Most YAML events that aliases may replay in one file; this is what stops
/// "billion laughs" expansion.
pub const MAX_REPLAYED_EVENTS: usize = 100_000;
/// Most YAML nodes accepted in one file.
pub const MAX_NODES: usize = 500_000;

/// Parses every document in `text` (multi-document YAML).
///
/// Returns the documents, or every problem found: YAML syntax (with line and
/// column), limits, unknown `apiVersion`/`kind`, unknown fields and values of
/// the wrong type. Semantic rules are checked by [`crate::validate()`]; use
/// [`load_documents`] for both at once.
///
/// `file_name` is only used to word limit messages; problems do not repeat it,
/// the caller prefixes it when rendering (see [`crate::Diagnostic`]).
pub fn parse_documents(file_name: &str, text: &str) -> Result<Vec<Document>, Vec<Problem>> {
    let (documents, problems) = parse_collecting(file_name, text);
    if problems.is_empty() {
        Ok(documents)
    } else {
        Err(problems)
    }
}

/// Parses and validates every document in `text`, reporting every problem at
/// once, document by document.
///
/// A document with a value of the wrong type is not validated further: with
/// that value dropped, the rules would report things the user did not write.
pub fn load_documents(file_name: &str, text: &str) -> Result<Vec<Document>, Vec<Problem>> {
    let parsed = match parse_each(file_name, text) {
        Ok(parsed) => parsed,
        Err(problem) => return Err(vec![problem]),
    };
    let many = parsed.len() > 1;
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for (index, mut one) in parsed.into_iter().enumerate() {
        if let Some(document) = one.document {
            if one.values_intact {
                one.problems.extend(validate::validate(&document));
            }
            documents.push(document);
        }
        problems.extend(with_document_prefix(one.problems, many, index));
    }
    if problems.is_empty() {
        Ok(documents)
    } else {
        Err(problems)
    }
}

/// Parses what can be parsed and returns it with all parsing problems found.
///
/// With more than one document in the file, paths start with `documents[N].`
/// (counting from 0) so each problem says which document it is about.
pub fn parse_collecting(file_name: &str, text: &str) -> (Vec<Document>, Vec<Problem>) {
    let parsed = match parse_each(file_name, text) {
        Ok(parsed) => parsed,
        Err(problem) => return (Vec::new(), vec![problem]),
    };
    let many = parsed.len() > 1;
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for (index, one) in parsed.into_iter().enumerate() {
        documents.extend(one.document);
        problems.extend(with_document_prefix(one.problems, many, index));
    }
    (documents, problems)
}

fn with_document_prefix(problems: Vec<Problem>, many: bool, index: usize) -> Vec<Problem> {
    if !many {
        return problems;
    }
    let prefix = format!("documents[{index}]");
    problems
        .into_iter()
        .map(|problem| problem.prefixed(&prefix))
        .collect()
}

/// One document of a file, as far as it could be typed.
struct Parsed {
    document: Option<Document>,
    problems: Vec<Problem>,
    values_intact: bool,
}

/// Reads the file and types each document, or refuses the file as a whole.
fn parse_each(file_name: &str, text: &str) -> Result<Vec<Parsed>, Problem> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Problem::new(
            "",
            format!(
                "{file_name} is {} bytes; files larger than {} MiB are refused",
                text.len(),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(read_yaml(text)?
        .into_iter()
        .map(document_from_value)
        .collect())
}

/// Reads the YAML stream into generic trees, one per non-empty document.
fn read_yaml(text: &str) -> Result<Vec<Value>, Problem> {
    let budget = serde_saphyr::budget! {
        max_depth: MAX_DEPTH,
        flow_nesting_limit: MAX_DEPTH,
        max_documents: MAX_DOCUMENTS,
        max_aliases: MAX_ALIASES,
        max_anchors: MAX_ALIASES,
        max_nodes: MAX_NODES,
        max_events: 4 * MAX_NODES,
        max_recorded_anchor_events: MAX_REPLAYED_EVENTS,
        max_total_scalar_bytes: MAX_FILE_BYTES,
        max_merge_keys: MAX_ALIASES,
    };
    let mut options = serde_saphyr::options! {
        budget: budget,
        with_snippet: false,
    };
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options.alias_limits.max_replay_stack_depth = MAX_DEPTH;

    let values: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|error| yaml_problem(&error))?;
    Ok(values
        .into_iter()
        .filter(|value| !value.is_null())
        .collect())
}

/// A YAML error as a problem, on one line: `invalid YAML at line L, column C: what`.
fn yaml_problem(error: &serde_saphyr::Error) -> Problem {
    let rendered = error.to_string();
    let mut message = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // The library appends the position; it is put in front instead.
    if let Some(position) = message.find(" at line ") {
        message.truncate(position);
    }
    let message = explain_budget_breach(&message).unwrap_or(message);
    match error.location() {
        Some(location) => Problem::new(
            "",
            format!(
                "invalid YAML at line {}, column {}: {message}",
                location.line(),
                location.column()
            ),
        ),
        None => Problem::new("", format!("invalid YAML: {message}")),
    }
}

/// Words for the limits of [`read_yaml`], instead of the library's debug form.
fn explain_budget_breach(message: &str) -> Option<String> {
    let explained = if message.contains("Depth") || message.contains("recursion limit") {
        format!("nested deeper than {MAX_DEPTH} levels")
    } else if message.contains("Documents") {
        format!("more than {MAX_DOCUMENTS} documents in one file")
    } else if message.contains("Anchor") || message.contains("Alias") || message.contains("replay")
    {
        "aliases expand to too much data (an alias bomb?)".to_string()
    } else if message.contains("Nodes") || message.contains("Events") {
        format!("more than {MAX_NODES} YAML nodes")
    } else if message.contains("budget breached") {
        "input exceeds serin's parsing limits".to_string()
    } else {
        return None;
    };
    Some(explained)
}

/// Types one document tree, dispatching on `apiVersion` and `kind`.
fn document_from_value(value: Value) -> Parsed {
    let Value::Object(map) = &value else {
        return Parsed {
            document: None,
            problems: vec![Problem::new(
                "",
                "expected a mapping with apiVersion, kind, metadata and spec",
            )],
            values_intact: false,
        };
    };
    let mut problems = Vec::new();
    let api_version = required_string(map.get("apiVersion"), "apiVersion", &mut problems);
    let kind = required_string(map.get("kind"), "kind", &mut problems);
    if let Some(api_version) = api_version
        && !API_VERSIONS.contains(&api_version)
    {
        problems.push(Problem::new(
            "apiVersion",
            unknown_value_message("apiVersion", api_version, API_VERSIONS),
        ));
    }
    if let Some(kind) = kind
        && !KINDS.contains(&kind)
    {
        problems.push(Problem::new(
            "kind",
            unknown_value_message("kind", kind, KINDS),
        ));
    }
    if !problems.is_empty() {
        return Parsed {
            document: None,
            problems,
            values_intact: false,
        };
    }
    match kind {
        Some("Canary") => typed(value, Document::Canary as fn(Canary) -> Document),
        Some("MetricTemplate") => typed(
            value,
            Document::MetricTemplate as fn(MetricTemplate) -> Document,
        ),
        Some("AlertProvider") => typed(
            value,
            Document::AlertProvider as fn(AlertProvider) -> Document,
        ),
        _ => Parsed {
            document: None,
            problems,
            values_intact: false,
        },
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: Value, wrap: fn(T) -> Document) -> Parsed {
    let collected = deserialize_collecting::<T>(value);
    Parsed {
        document: collected.value.map(wrap),
        problems: collected.problems,
        values_intact: collected.values_intact,
    }
}

fn required_string<'a>(
    value: Option<&'a Value>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a str> {
    match value {
        Some(Value::String(text)) => Some(text),
        None | Some(Value::Null) => {
            problems.push(Problem::new(
                Path::root().key(field),
                "required field is missing",
            ));
            None
        }
        Some(_) => {
            problems.push(Problem::new(Path::root().key(field), "expected a string"));
            None
        }
    }
}

fn unknown_value_message(field: &str, value: &str, known: &[&str]) -> String {
    let expected = known.join(", ");
    match suggest::nearest(value, known) {
        Some(suggestion) => {
            format!(
                "unknown {field} {value:?}, did you mean {suggestion}? (expected one of {expected})"
            )
        }
        None => format!("unknown {field} {value:?}, expected one of {expected}"),
    }
}
