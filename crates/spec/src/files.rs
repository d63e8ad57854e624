//! Canary files as every command reads them: one loader, one set of rules.
//!
//! `serin validate`, `serin run`, `serin grafana`, `serin serve` and the
//! daemon's reloads all load files here, so a file set one accepts the
//! others accept too. The rules, in order:
//!
//! 1. each file is read whole, at most [`MAX_FILE_BYTES`], as UTF-8;
//! 2. each file holds at least one document, and each document parses and
//!    validates on its own ([`crate::load_documents`]);
//! 3. across files, the canaries serin itself serves (`provider: builtin`)
//!    have unique names (the daemon and the API know canaries by name) and
//!    listen on distinct addresses, and their `templateRef`s and
//!    `providerRef`s lead to documents among the files.
//!
//! Flagger canaries for other providers may share names and refer to
//! objects that live in a cluster: Flagger's own examples do both.
//!
//! Reading files is the only I/O in this crate ([`read_file`],
//! [`load_paths`]); [`load_texts`] applies the same rules to texts.

use crate::{
    canary::Canary,
    catalog::Catalog,
    document::Document,
    parse::{MAX_FILE_BYTES, load_documents},
    problem::{Diagnostic, Problem},
};
use std::{
    collections::BTreeMap,
    io::Read as _,
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Canary files as loaded.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Every document of every file.
    pub catalog: Catalog,
    /// The file each canary came from, by canary name (the first file, for
    /// Flagger canaries that share a name).
    pub files: BTreeMap<String, String>,
}

// === impl Loaded ===

impl Loaded {
    /// The file that holds the canary `name` (the only canary when `None`),
    /// for diagnostics; the first file given when there is no such canary,
    /// since a problem must name some file.
    pub fn file_of(&self, name: Option<&str>, files: &[PathBuf]) -> String {
        let name = match (name, self.catalog.canaries()) {
            (Some(name), _) => Some(name),
            (None, [one]) => Some(one.name()),
            (None, _) => None,
        };
        name.and_then(|name| self.files.get(name).cloned())
            .or_else(|| files.first().map(|f| f.display().to_string()))
            .unwrap_or_default()
    }
}

/// Reads one file: at most [`MAX_FILE_BYTES`] (the read itself is bounded,
/// so a file that grows after its size was checked, or a device that
/// reports none, cannot exhaust memory), UTF-8.
pub fn read_file(path: &Path) -> Result<String, Problem> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|_| Problem::new("", "cannot read: not UTF-8 text"))
}

/// The bytes of a file, bounded as [`read_file`] bounds them; for callers
/// that only compare contents (the daemon's polling).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, Problem> {
    let limit = u64::try_from(MAX_FILE_BYTES).unwrap_or(u64::MAX);
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > limit {
        return Err(too_large(len));
    }
    Ok(bytes)
}

fn cannot_read(error: std::io::Error) -> Problem {
    Problem::new("", format!("cannot read: {error}"))
}

fn too_large(len: u64) -> Problem {
    Problem::new(
        "",
        format!(
            "file is {len} bytes or more; files larger than {} MiB are refused",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
}

/// Reads `paths` and loads them with [`load_texts`]; every problem of every
/// file at once, each naming its file (as the user wrote it) and field.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, Vec<Diagnostic>> {
    let mut texts = Vec::new();
    let mut diagnostics = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match read_file(path) {
            Ok(text) => texts.push((name, text)),
            Err(problem) => diagnostics.push(problem.in_file(name)),
        }
    }
    match load_texts(
        texts
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    ) {
        Ok(loaded) if diagnostics.is_empty() => Ok(loaded),
        Ok(_) => Err(diagnostics),
        Err(more) => {
            diagnostics.extend(more);
            Err(diagnostics)
        }
    }
}

/// Parses and validates `(file name, text)` pairs with the rules of this
/// module; every problem of every file at once.
pub fn load_texts<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let mut catalog = Catalog::new();
    let mut diagnostics = Vec::new();
    // Where each canary sits: file, document prefix (`documents[N]` in a
    // file of several documents), the canary.
    let mut placed: Vec<(String, Option<String>, Canary)> = Vec::new();
    for (file, text) in files {
        match load_documents(file, text) {
            Ok(documents) if documents.is_empty() => diagnostics.push(
                Problem::new(
                    "",
                    "holds no document (Canary, MetricTemplate or AlertProvider); an empty file is refused, as one caught half-written would be",
                )
                .in_file(file),
            ),
            Ok(documents) => {
                let many = documents.len() > 1;
                for (index, document) in documents.into_iter().enumerate() {
                    if let Document::Canary(canary) = &document {
                        let prefix = many.then(|| format!("documents[{index}]"));
                        placed.push((file.to_owned(), prefix, canary.clone()));
                    }
                    catalog.add(document);
                }
            }
            Err(problems) => {
                diagnostics.extend(problems.into_iter().map(|problem| problem.in_file(file)));
            }
        }
    }
    let mut files = BTreeMap::new();
    for (file, _, canary) in &placed {
        files
            .entry(canary.name().to_owned())
            .or_insert_with(|| file.clone());
    }
    diagnostics.extend(across_files(&catalog, &placed));
    if diagnostics.is_empty() {
        Ok(Loaded { catalog, files })
    } else {
        Err(diagnostics)
    }
}

/// The rules between documents: unique names and listen addresses of the
/// canaries serin serves, and their references.
fn across_files(catalog: &Catalog, placed: &[(String, Option<String>, Canary)]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let at = |file: &str, prefix: &Option<String>, problem: Problem| match prefix {
        Some(prefix) => problem.prefixed(prefix).in_file(file),
        None => problem.in_file(file),
    };
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut listens: Vec<(SocketAddr, &str, &str)> = Vec::new();
    // UDP addresses of the balancers' log receivers: a separate space from
    // the proxies' TCP listeners, so the two never clash with each other.
    let mut logs: Vec<(SocketAddr, &str, &str)> = Vec::new();
    for (file, prefix, canary) in placed.iter().filter(|(_, _, c)| c.is_runnable()) {
        let name = canary.name();
        match names.get(name) {
            Some(first) => diagnostics.push(at(
                file,
                prefix,
                Problem::new(
                    "metadata.name",
                    format!(
                        "canary {name:?} is also defined in {first}; canary names must be unique"
                    ),
                ),
            )),
            None => {
                names.insert(name, file);
            }
        }
        if let Some(listen) = canary.listen_addr().filter(|a| a.port() != 0) {
            match listens.iter().find(|(other, _, _)| overlap(*other, listen)) {
                Some((other, other_name, other_file)) => diagnostics.push(at(
                    file,
                    prefix,
                    Problem::new(
                        "spec.service.listen",
                        format!(
                            "{listen} is taken: canary {other_name:?} in {other_file} listens on {other}; each canary needs its own address"
                        ),
                    ),
                )),
                None => listens.push((listen, name, file)),
            }
        }
        if let Some((field, log)) = canary.log_listen_addr().filter(|(_, a)| a.port() != 0) {
            match logs.iter().find(|(other, _, _)| overlap(*other, log)) {
                Some((other, other_name, other_file)) => diagnostics.push(at(
                    file,
                    prefix,
                    Problem::new(
                        field,
                        format!(
                            "{log} is taken: canary {other_name:?} in {other_file} receives its balancer's log on {other}; each canary needs its own log address"
                        ),
                    ),
                )),
                None => logs.push((log, name, file)),
            }
        }
        if let Err(problems) = catalog.resolve_for_run(canary) {
            diagnostics.extend(
                problems
                    .into_iter()
                    .map(|problem| at(file, prefix, problem)),
            );
        }
    }
    diagnostics
}

/// Whether two listen addresses cannot both be bound: the same port on the
/// same address, or on any address when either is a wildcard (`0.0.0.0`,
/// `[::]`).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(name: &str, listen: &str) -> String {
        format!(
            "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: {name}}}
spec:
  provider: builtin
  service: {{listen: '{listen}'}}
  upstreams: {{stable: http://127.0.0.1:9001}}
  analysis: {{interval: 1m, threshold: 5, stepWeights: [50]}}
"
        )
    }

    fn rendered(result: Result<Loaded, Vec<Diagnostic>>) -> Vec<String> {
        result
            .expect_err("refused")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn canary_names_are_unique_across_files() {
        let (a, b) = (
            canary("web", "127.0.0.1:8080"),
            canary("web", "127.0.0.1:8081"),
        );
        assert_eq!(
            rendered(load_texts([("a.yaml", a.as_str()), ("b.yaml", b.as_str())])),
            [
                "b.yaml: metadata.name: canary \"web\" is also defined in a.yaml; canary names must be unique"
            ]
        );
    }

    #[test]
    fn listen_addresses_are_unique_and_wildcards_overlap() {
        let one = format!(
            "{}---\n{}",
            canary("web", "127.0.0.1:8080"),
            canary("api", "0.0.0.0:8080")
        );
        assert_eq!(
            rendered(load_texts([("both.yaml", one.as_str())])),
            [
                "both.yaml: documents[1].spec.service.listen: 0.0.0.0:8080 is taken: canary \"web\" in both.yaml listens on 127.0.0.1:8080; each canary needs its own address"
            ]
        );
        let free = format!(
            "{}---\n{}",
            canary("web", "127.0.0.1:0"),
            canary("api", "127.0.0.1:0")
        );
        assert!(
            load_texts([("free.yaml", free.as_str())]).is_ok(),
            "port 0 picks a free port"
        );
    }

    #[test]
    fn balancer_log_addresses_are_unique() {
        let haproxy = |name: &str, log: &str| {
            format!(
                "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {{name: {name}}}
spec:
  provider: haproxy
  haproxy:
    runtimeApi: ['127.0.0.1:9999']
    backend: {name}
    servers: {{stable: stable, canary: canary}}
    logListen: '{log}'
  upstreams: {{stable: 127.0.0.1:9001}}
  analysis: {{interval: 1m, threshold: 5, stepWeights: [50]}}
"
            )
        };
        let nginx = "apiVersion: serin.dev/v1alpha1
kind: Canary
metadata: {name: api}
spec:
  provider: nginx
  nginx: {upstream: api, configFile: /tmp/api.conf, logListen: '0.0.0.0:5141'}
  upstreams: {stable: 127.0.0.1:9002}
  analysis: {interval: 1m, threshold: 5, stepWeights: [50]}
";
        let shop = haproxy("shop", "127.0.0.1:5141");
        assert_eq!(
            rendered(load_texts([
                ("shop.yaml", shop.as_str()),
                ("api.yaml", nginx)
            ])),
            [
                "api.yaml: spec.nginx.logListen: 0.0.0.0:5141 is taken: canary \"shop\" in shop.yaml receives its balancer's log on 127.0.0.1:5141; each canary needs its own log address"
            ]
        );
        let other = haproxy("cart", "127.0.0.1:5142");
        assert!(
            load_texts([("shop.yaml", shop.as_str()), ("cart.yaml", other.as_str())]).is_ok(),
            "distinct log addresses are accepted"
        );
    }

    #[test]
    fn references_of_served_canaries_must_resolve() {
        let text = canary("web", "127.0.0.1:8080").replace(
            "stepWeights: [50]}",
            "stepWeights: [50], metrics: [{name: errors, templateRef: {name: errors}, thresholdRange: {max: 1}}]}",
        );
        assert_eq!(
            rendered(load_texts([("web.yaml", text.as_str())])),
            [
                "web.yaml: spec.analysis.metrics[0].templateRef: MetricTemplate \"errors\" not found in the given files"
            ]
        );
    }

    #[test]
    fn flagger_canaries_may_share_names() {
        let flagger = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
";
        let loaded = load_texts([("a.yaml", flagger), ("b.yaml", flagger)]).expect("accepted");
        assert_eq!(loaded.catalog.canaries().len(), 2);
        assert_eq!(
            loaded.files.get("podinfo").map(String::as_str),
            Some("a.yaml")
        );
    }

    #[test]
    fn empty_files_are_refused() {
        assert_eq!(
            rendered(load_texts([("empty.yaml", "# nothing\n")])),
            [
                "empty.yaml: holds no document (Canary, MetricTemplate or AlertProvider); an empty file is refused, as one caught half-written would be"
            ]
        );
    }
}
