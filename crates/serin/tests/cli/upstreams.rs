//! `serin validate` refuses exactly the upstream URLs the daemon's start and
//! the proxy refuse, with the same message (one shared table).

use crate::support::*;

#[test]
fn validate_follows_the_shared_upstream_table() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = serin_testkit::UPSTREAM_URLS
        .iter()
        .enumerate()
        .map(|(index, (url, _))| {
            // JSON strings are YAML double-quoted strings. Each canary has
            // its own listen address: validated together, they must not
            // share one.
            let quoted = serde_json::to_string(url).unwrap();
            let port = 8080 + index;
            write(
                dir.path(),
                &format!("u{index}.yaml"),
                &format!(
                    "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata:\n  name: u{index}\nspec:\n  provider: builtin\n  service:\n    listen: 127.0.0.1:{port}\n  upstreams:\n    stable: http://127.0.0.1:9001\n    canary: {quoted}\n  analysis:\n    interval: 1m\n    stepWeight: 10\n"
                ),
            )
        })
        .collect();
    let out = output(serin().arg("validate").args(&files));
    let err = stderr(&out);
    for ((url, expected), file) in serin_testkit::UPSTREAM_URLS.iter().zip(&files) {
        let prefix = format!("{}: ", file.display());
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&prefix)).collect();
        match expected {
            None => assert!(lines.is_empty(), "{url:?}: {lines:?}"),
            Some(message) => {
                assert_eq!(lines.len(), 1, "{url:?}: {err}");
                assert!(
                    lines[0].contains("spec.upstreams.canary: ") && lines[0].contains(message),
                    "{url:?}: {}",
                    lines[0]
                );
            }
        }
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
}
