//! `serin grafana FILE`: prints a Grafana dashboard for the canary in FILE.

use crate::commands::{EXIT_OK, EXIT_TROUBLE};
use anyhow::Result;
use std::{path::PathBuf, process::ExitCode};

/// Prints the dashboard of the canary in `files` (its templates may sit in
/// the other files), or the problems that keep it from being generated.
pub fn grafana(files: &[PathBuf], name: Option<&str>, api: bool) -> Result<ExitCode> {
    let loaded = match crate::commands::load_with_files(files) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let file = loaded.file_of(name, files);
    let catalog = loaded.catalog;
    let canary = match (name, catalog.canaries()) {
        (Some(name), _) => catalog.canary(name),
        (None, [one]) => Some(one),
        (None, _) => None,
    };
    let Some(canary) = canary else {
        eprintln!(
            "{file}: {}",
            match name {
                Some(name) => format!("metadata.name: no canary named {name:?}"),
                None if catalog.canaries().is_empty() => "kind: no Canary document found".into(),
                None => "metadata.name: several canaries: name one with --name".into(),
            }
        );
        return Ok(ExitCode::from(EXIT_TROUBLE));
    };
    let resolved = match catalog.resolve_for_run(canary) {
        Ok(resolved) => resolved,
        Err(problems) => {
            eprint!("{}", serin_spec::render_problems(&file, &problems));
            return Ok(ExitCode::from(EXIT_TROUBLE));
        }
    };
    let dashboard = serin_telemetry::grafana::dashboard(&resolved);
    let dashboard = if api {
        serin_telemetry::grafana::for_api(dashboard)
    } else {
        dashboard
    };
    println!("{}", serde_json::to_string_pretty(&dashboard)?);
    Ok(ExitCode::from(EXIT_OK))
}
