//! What the Debian package ships besides the binary: shell completions and
//! man pages, generated from the argument definitions themselves.

use crate::support::*;

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _serin"),
        ("zsh", "#compdef serin"),
        ("fish", "complete -c serin"),
        ("elvish", "serin"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = output(serin().args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell}: {text}");
        // Subcommands and their flags are completed.
        assert!(text.contains("validate"), "{shell}");
        assert!(text.contains("state-dir"), "{shell}");
    }
    let out = output(serin().args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_render() {
    let out = output(serin().arg("man"));
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &page[..80.min(page.len())]
    );
    assert!(page.contains(".TH serin 1"), "{page}");
    assert!(page.contains(".SH NAME"), "{page}");
    assert!(page.contains("validate"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out = output(serin().args(["man", "--dir"]).arg(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "serin.1",
        "serin-validate.1",
        "serin-serve.1",
        "serin-completions.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".SH NAME"), "{page}");
    }
    // groff, where installed, reads them without a warning.
    if std::process::Command::new("groff")
        .arg("--version")
        .output()
        .is_ok()
    {
        let rendered = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.path().join("serin-serve.1"))
            .output()
            .unwrap();
        assert!(rendered.status.success());
        assert_eq!(String::from_utf8_lossy(&rendered.stderr), "");
    }
}
