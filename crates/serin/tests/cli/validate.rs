//! `serin validate`: exit 0 for valid files, 2 with one line per problem.

use crate::support::*;

#[test]
fn flaggers_own_manifests_validate() {
    let dir = testdata().join("compat/flagger");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() > 100);
    let out = output(serin().arg("validate").args(&files));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid"), "{}", stdout(&out));
}

#[test]
fn problems_name_file_and_field_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "canary.yaml",
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata:\n  name: myapp\nspec:\n  provider: builtin\n  service:\n    listen: 127.0.0.1:8080\n  upstreams:\n    stable: http://127.0.0.1:9001\n  analysis:\n    interval: 1m\n    threshold: 5\n    maxWeight: 50\n    stepWeight: 0\n    metrics:\n    - name: request-success-rate\n      thresholdRange: {min: 99, max: 90}\n",
    );
    let out = output(serin().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let file = bad.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}: spec.analysis.stepWeight: must be between 1 and 100, got 0"
        )),
        "{err}"
    );
    assert!(
        err.contains("spec.analysis.metrics[0].thresholdRange: min 99 is above max 90"),
        "{err}"
    );
}

#[test]
fn malformed_yaml_and_missing_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: [unclosed\n",
    );
    let out = output(
        serin()
            .arg("validate")
            .arg(&bad)
            .arg(dir.path().join("missing.yaml")),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("broken.yaml"), "{err}");
    assert!(err.contains("line"), "malformed YAML says where: {err}");
    assert!(err.contains("missing.yaml: cannot read"), "{err}");
}

#[test]
fn the_demo_config_is_a_valid_canary() {
    let out = output(serin().args(["demo", "--print-config"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "demo.yaml", &stdout(&out));
    let out = output(serin().arg("validate").arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn hostile_input_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("l{}", i - 1)
        };
        bomb.push_str(&format!("l{i}: &l{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let file = write(dir.path(), "bomb.yaml", &bomb);
    let deep = write(dir.path(), "deep.yaml", &"[".repeat(100_000));
    let out = output(serin().arg("validate").arg(&file).arg(&deep));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// Every MetricTemplate serin ships: the files of docs/templates (as
/// docs/metrics.md tells users to check them) and the YAML examples of the
/// Markdown docs that hold a whole document.
#[test]
fn the_shipped_templates_and_doc_examples_validate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<_> = std::fs::read_dir(root.join("docs/templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    let out = output(serin().arg("validate").args(&files));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let mut markdown = vec![root.join("README.md")];
    markdown.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    files.clear();
    for doc in markdown {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (index, block) in text.split("```yaml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap();
            if block.starts_with("apiVersion:") && block.contains("kind: MetricTemplate") {
                let name = format!(
                    "{}-{index}.yaml",
                    doc.file_stem().unwrap().to_string_lossy()
                );
                files.push(write(dir.path(), &name, block));
            }
        }
    }
    assert!(!files.is_empty(), "docs/metrics.md shows a MetricTemplate");
    let out = output(serin().arg("validate").args(&files));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
