//! The progress bar: drawn on a terminal, silent when stderr is a pipe (as in every other test).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures")
        .join(p)
}

fn quantize_cmd(out: &Path) -> Vec<String> {
    let src = fixture("models/llama");
    [
        env!("CARGO_BIN_EXE_wharf"),
        "quantize",
        src.to_str().unwrap(),
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        out.to_str().unwrap().to_owned(),
        "--scheme".into(),
        "gguf:Q4_0".into(),
    ])
    .collect()
}

#[test]
fn no_bar_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = quantize_cmd(&dir.path().join("q.gguf"));
    let o = Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_bar_on_a_terminal() {
    // util-linux `script` runs the command on a pseudo-terminal.
    if Command::new("script").arg("--version").output().is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cmd = quantize_cmd(&dir.path().join("q.gguf")).join(" ");
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("quantizing") && text.contains("tensors"),
        "{text}"
    );
}
