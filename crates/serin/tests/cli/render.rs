//! `serin render`: Flagger's manifests render as multi-document YAML; bad
//! input exits 2 naming the field.

use std::{path::PathBuf, process::Command};

fn compat(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/compat/flagger")
        .join(name)
}

fn render(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("render")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn kinds(yaml: &str) -> Vec<String> {
    yaml.split("---\n")
        .map(|doc| {
            let value: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
            format!(
                "{}/{}",
                value["kind"].as_str().unwrap(),
                value["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn serin_render_prints_flaggers_istio_objects() {
    let file = compat("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml");
    let (code, stdout, stderr) = render(&[file.to_str().unwrap(), "--weight", "10"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        kinds(&stdout),
        [
            "Deployment/podinfo-primary",
            "Service/podinfo",
            "Service/podinfo-primary",
            "Service/podinfo-canary",
            "DestinationRule/podinfo-canary",
            "DestinationRule/podinfo-primary",
            "VirtualService/podinfo",
        ]
    );
    assert!(
        stdout.contains("host: podinfo-canary\n      weight: 10\n"),
        "{stdout}"
    );
}

#[test]
fn serin_render_takes_the_provider_where_the_canary_names_none() {
    let file = compat("test_gatewayapi_test-canary-082-canary.yaml");
    let (code, stdout, stderr) = render(&[
        file.to_str().unwrap(),
        "--provider",
        "gatewayapi:v1",
        "--weight",
        "50",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(kinds(&stdout).contains(&"HTTPRoute/podinfo".to_string()));
    assert!(stdout.contains("apiVersion: gateway.networking.k8s.io/v1\n"));
    assert!(stdout.contains("weight: 50"));
}

#[test]
fn serin_render_refuses_bad_input_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canary.yaml");
    std::fs::write(
        &file,
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: istio\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {targetPort: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, stdout, stderr) = render(&[path]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("spec.service.port"), "{stderr}");
    assert!(stderr.contains(path), "{stderr}");

    let good = compat("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml");
    let (code, _, stderr) = render(&[good.to_str().unwrap(), "--weight", "101"]);
    assert_eq!(code, 2);
    assert_eq!(stderr, "--weight: must be between 0 and 100, got 101\n");

    let (code, _, stderr) = render(&[good.to_str().unwrap(), "--name", "other"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("metadata.name: no canary named \"other\""),
        "{stderr}"
    );
}

#[test]
fn serin_render_says_which_providers_this_build_cannot_render() {
    let file = compat("docs_gitbook_tutorials_istio-progressive-delivery-034-canary.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("spec:\n", "spec:\n  provider: alb\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alb.yaml");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = render(&[path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("render for provider alb is not available in this build"),
        "{stderr}"
    );
}

#[test]
fn serin_render_prints_the_builtin_route_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("builtin.yaml");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kube/serin-builtin.yaml"),
        &path,
    )
    .unwrap();
    let (code, stdout, stderr) = render(&[path.to_str().unwrap(), "--weight", "20"]);
    assert_eq!(code, 0, "{stderr}");
    let table: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    assert_eq!(
        table["weights"],
        serde_json::json!({"stable": 80, "canary": 20})
    );
    assert_eq!(table["upstreams"]["canary"], "http://127.0.0.1:9002");
    assert_eq!(table["listen"], "127.0.0.1:8080");
}
