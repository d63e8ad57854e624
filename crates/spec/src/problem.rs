//! Problems found in a document, and how they are shown to people.
//!
//! Every check in this crate reports a [`Problem`] instead of stopping at the
//! first mistake: a person fixing a canary file wants the whole list at once.

use std::fmt;

/// One thing wrong with a document: where (a field path such as
/// `spec.analysis.stepWeight`) and what.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// Field path inside the document, e.g. `spec.analysis.metrics[1].thresholdRange`.
    /// Empty when the problem concerns the file as a whole (YAML syntax, size).
    pub path: String,
    /// What is wrong, in words, e.g. `must be between 1 and 100, got 0`.
    pub message: String,
}

/// A problem together with the file it was found in, rendered as
/// `FILE: PATH: MESSAGE` (one line per problem, as `serin validate` prints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as the user gave it.
    pub file: String,
    /// The problem itself.
    pub problem: Problem,
}

// === impl Problem ===

impl Problem {
    /// A problem at `path` (a [`Path`] or anything that displays as one).
    pub fn new(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The same problem with `prefix` in front of its path, for documents nested in
    /// a multi-document file (`documents[1].spec.query`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_string()
        } else if self.path.starts_with('[') {
            format!("{prefix}{}", self.path)
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }

    /// Attaches the file name, for rendering.
    pub fn in_file(self, file: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            problem: self,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

// === impl Diagnostic ===

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.problem)
    }
}

/// Renders problems as `FILE: PATH: MESSAGE` lines, one per problem.
pub fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for problem in problems {
        out.push_str(file);
        out.push_str(": ");
        out.push_str(&problem.to_string());
        out.push('\n');
    }
    out
}

/// A field path being walked, e.g. `spec.analysis.metrics[1]`.
///
/// Kept as segments (not a string) so that the parser can find the offending
/// value again and drop it before retrying (see `de.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    segments: Vec<Segment>,
}

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

// === impl Path ===

impl Path {
    /// The document root.
    pub fn root() -> Self {
        Self::default()
    }

    /// This path followed by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Key(key.to_string()));
        Self { segments }
    }

    /// This path followed by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Index(index));
        Self { segments }
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether this is the document root.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) if is_plain_key(key) => {
                    if position > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                // Keys such as annotation names (`kuma.io/mesh`) would make a dotted path
                // ambiguous, so they are quoted.
                Segment::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_field_accessors() {
        let path = Path::root()
            .key("spec")
            .key("analysis")
            .key("metrics")
            .index(1)
            .key("thresholdRange");
        assert_eq!(path.to_string(), "spec.analysis.metrics[1].thresholdRange");
        let odd = Path::root()
            .key("metadata")
            .key("annotations")
            .key("kuma.io/mesh");
        assert_eq!(odd.to_string(), "metadata.annotations[\"kuma.io/mesh\"]");
    }

    #[test]
    fn diagnostics_render_file_path_message() {
        let problem = Problem::new(
            "spec.analysis.stepWeight",
            "must be between 1 and 100, got 0",
        );
        assert_eq!(
            problem.in_file("canary.yaml").to_string(),
            "canary.yaml: spec.analysis.stepWeight: must be between 1 and 100, got 0"
        );
    }
}
