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

/// Writes `spec` (the lines under `spec:`) as a serin canary file named
/// `shop` and renders it with `args`.
fn render_spec(spec: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.yaml");
    let text = format!(
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {{name: shop}}\nspec:\n{spec}  analysis: {{interval: 10s, threshold: 2, stepWeights: [25, 50]}}\n"
    );
    std::fs::write(&path, text).unwrap();
    let mut all = vec![path.to_str().unwrap()];
    all.extend_from_slice(args);
    render(&all)
}

#[test]
fn serin_render_prints_the_haproxy_commands() {
    let (code, stdout, stderr) = render_spec(
        "  provider: haproxy\n  haproxy: {runtimeApi: [\"127.0.0.1:9999\"], backend: shop, servers: {stable: s1, canary: s2}, logListen: 127.0.0.1:5141}\n  upstreams: {stable: 127.0.0.1:9001, canary: 127.0.0.1:9002}\n",
        &["--weight", "25"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(kinds(&stdout), ["HAProxyRuntimeCommands/shop"]);
    for line in [
        "- set server shop/s1 addr 127.0.0.1 port 9001",
        "- set server shop/s1 weight 75",
        "- set server shop/s2 addr 127.0.0.1 port 9002",
        "- set server shop/s2 weight 25",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from {stdout}");
    }
}

#[test]
fn serin_render_prints_the_nginx_upstream_file() {
    let spec = "  provider: nginx\n  nginx: {upstream: shop, configFile: /etc/nginx/serin/shop.conf, logListen: 127.0.0.1:5140}\n  upstreams: {stable: 127.0.0.1:9001, canary: 127.0.0.1:9002}\n";
    let (code, stdout, stderr) = render_spec(spec, &["--weight", "30"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(kinds(&stdout), ["NginxUpstreamFile/shop"]);
    assert!(stdout.contains("/etc/nginx/serin/shop.conf"), "{stdout}");
    assert!(stdout.contains("upstream shop {"), "{stdout}");
    assert!(
        stdout.contains("server 127.0.0.1:9001 weight=70;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("server 127.0.0.1:9002 weight=30;"),
        "{stdout}"
    );
    let (code, stdout, _) = render_spec(spec, &[]);
    assert_eq!(code, 0);
    assert!(
        !stdout.contains("127.0.0.1:9002"),
        "weight 0 sends nothing to the canary: {stdout}"
    );
}

#[test]
fn serin_render_prints_the_alb_forward_action() {
    let tg = |name: &str| {
        format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/73e2d6bc24d8a067"
        )
    };
    let spec = format!(
        "  provider: alb\n  alb:\n    listenerArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2\n    stableTargetGroupArn: {}\n    region: us-east-1\n  upstreams: {{canary: {}}}\n",
        tg("v1"),
        tg("v2")
    );
    let (code, stdout, stderr) = render_spec(&spec, &["--weight", "40"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(kinds(&stdout), ["ALBForwardAction/shop"]);
    let document: serde_json::Value = serde_saphyr::from_str(&stdout).unwrap();
    assert_eq!(
        document["action"]["ForwardConfig"]["TargetGroups"],
        serde_json::json!([
            {"TargetGroupArn": tg("v1"), "Weight": 60},
            {"TargetGroupArn": tg("v2"), "Weight": 40},
        ])
    );

    let (code, _, stderr) = render_spec(
        "  provider: alb\n  alb:\n    listenerArn: nope\n    stableTargetGroupArn: nope\n    region: us-east-1\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.alb"), "{stderr}");
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
