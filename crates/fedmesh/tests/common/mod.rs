//! Helpers shared by the process-level tests: running the `fedmesh` binary, signalling it,
//! waiting for it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `fedmesh` binary, without the caller's FEDMESH_* settings or RUST_LOG.
pub(crate) fn fedmesh() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fedmesh"));
    // The shell running the tests may carry FEDMESH_* settings of its own.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FEDMESH_")) {
        command.env_remove(key);
    }
    command.env_remove("RUST_LOG");
    command
}

pub(crate) fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run fedmesh: {e}"))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "fedmesh failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

pub(crate) fn assert_fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "fedmesh unexpectedly succeeded:\n{}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fedmesh did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `fedmesh demo` with `members` members on free ports in `dir`.
pub(crate) fn spawn_demo(dir: &Path, members: u16, stdout: Stdio) -> Child {
    fedmesh()
        .args([
            "demo",
            "--dir",
            dir.to_str().unwrap(),
            "--base-port",
            "0",
            "--members",
        ])
        .arg(members.to_string())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub(crate) fn wait_file(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "fedmesh exited ({status}) before writing {}",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} was never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
