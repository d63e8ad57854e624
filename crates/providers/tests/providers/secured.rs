//! The Prometheus provider against a real Prometheus serving https with a
//! test CA (made by `openssl`) and basic authentication (`htpasswd`).

use serin_providers::PrometheusQuery;
use serin_rollout::{
    Timestamp,
    ports::{MetricQuery, PortError},
};
use serin_spec::{BasicAuth, MetricProvider};
use serin_stats::Version;
use serin_testkit::Prometheus;
use std::{path::Path, process::Command, time::Duration};

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} (apt-get install -y openssl apache2-utils): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A CA and a certificate for 127.0.0.1 signed by it.
pub(crate) fn certificates(dir: &Path) {
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=serin test CA",
        ],
    );
    run(
        dir,
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

fn query(prometheus: &Prometheus, change: impl FnOnce(&mut MetricProvider)) -> PrometheusQuery {
    let mut provider = MetricProvider {
        provider_type: "prometheus".into(),
        address: Some(prometheus.url.clone()),
        timeout: Some(serin_spec::Duration::from_secs(5)),
        ..MetricProvider::default()
    };
    change(&mut provider);
    PrometheusQuery::new("q", &provider, "vector(7)", &Default::default()).unwrap()
}

async fn eventually(q: &PrometheusQuery) -> Result<Option<f64>, PortError> {
    let mut last = None;
    for _ in 0..100 {
        match q.query(Version::Canary, Timestamp::from_millis(0)).await {
            Ok(value) => return Ok(value),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap())
}

#[tokio::test]
async fn https_with_a_ca_file_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let hash = run(dir.path(), "htpasswd", &["-nbBC", "10", "serin", "s3cret"]);
    let hash = hash.trim().split_once(':').unwrap().1.to_owned();
    std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  serin: '{hash}'\n",
        dir.path().join("server.crt").display(),
        dir.path().join("server.key").display(),
    );
    let prometheus = Prometheus::start_with_web_config("  []\n", Some(&web)).await;
    assert!(prometheus.url.starts_with("https://"));
    let ca = dir.path().join("ca.crt").display().to_string();
    let password = dir.path().join("password").display().to_string();
    let auth = BasicAuth {
        username: "serin".into(),
        password_file: password.clone(),
    };

    // The CA and the password: the number.
    let good = query(&prometheus, |p| {
        p.ca_file = Some(ca.clone());
        p.basic_auth = Some(auth.clone());
    });
    assert_eq!(eventually(&good).await.unwrap(), Some(7.0));

    // The CA without the password: Prometheus refuses, and serin says so.
    let anonymous = query(&prometheus, |p| p.ca_file = Some(ca.clone()));
    let e = anonymous
        .query(Version::Canary, Timestamp::from_millis(0))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401"), "{e}");

    // Mozilla's roots do not know the test CA.
    let unknown = query(&prometheus, |p| p.basic_auth = Some(auth.clone()));
    let e = unknown
        .query(Version::Canary, Timestamp::from_millis(0))
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Unavailable { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // insecureSkipVerify, Flagger's field, accepts it.
    let insecure = query(&prometheus, |p| {
        p.insecure_skip_verify = true;
        p.basic_auth = Some(auth.clone());
    });
    assert_eq!(eventually(&insecure).await.unwrap(), Some(7.0));
}
