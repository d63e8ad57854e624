//! Files a test writes (canary files, configuration) into its temporary
//! directory.

use std::path::{Path, PathBuf};

/// Writes `text` to `name` in `dir` and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file written");
    path
}
