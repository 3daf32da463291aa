//! `docs/operator-guide.md`, run: every `sh` block of the guide, in order, in one fresh
//! directory, as an operator would type it (the guide's fixed ports moved to free ones). A
//! block must succeed, and print what the `text` block after it starts with.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::free_port;

/// The guide's `sh` blocks, each with the first line of the `text` block that follows it.
fn blocks(guide: &str) -> Vec<(String, Option<String>)> {
    let mut blocks: Vec<(String, Option<String>)> = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let fence = line.trim_end();
        if fence != "```sh" && fence != "```text" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| l.trim_end() != "```")
            .collect();
        if fence == "```sh" {
            blocks.push((body.join("\n"), None));
        } else if let Some(last) = blocks.last_mut()
            && last.1.is_none()
        {
            last.1 = body.first().map(|l| (*l).to_owned());
        }
    }
    blocks
}

#[test]
fn every_command_of_the_operator_guide_runs_from_scratch() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guide = std::fs::read_to_string(repo.join("docs/operator-guide.md")).unwrap();
    let blocks = blocks(&guide);
    assert!(blocks.len() >= 10, "{} blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo.join("examples"), dir.path().join("examples")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_fedmesh")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The guide's ports, and free ones for this run.
    let ports: Vec<(String, String)> = ["7400", "7443", "7444", "9400", "9443", "9444", "8400"]
        .iter()
        .map(|p| ((*p).to_owned(), free_port().to_string()))
        .collect();
    // One process group for every block, led by a process that outlives them, so that the
    // servers the guide starts in the background stop with the test.
    let leader = Command::new("sleep")
        .arg("3600")
        .process_group(0)
        .spawn()
        .unwrap();
    let group = leader.id() as i32;
    let _stop = Stop(leader);
    for (n, (block, expected)) in blocks.iter().enumerate() {
        let mut script = block.clone();
        for (from, to) in &ports {
            script = script.replace(from.as_str(), to);
        }
        let mut command = Command::new("bash");
        command
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env_remove("FEDMESH_PROFILE")
            .env_remove("FEDMESH_PROFILES")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(group);
        let child = command.spawn().unwrap();
        let output = wait_output(child, Duration::from_secs(90), n, block);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "block {n} failed ({}):\n{block}\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(first) = expected
            .as_deref()
            .and_then(|l| l.split_whitespace().next())
        {
            assert!(
                stdout.contains(first),
                "block {n} printed no `{first}`:\n{block}\n--- stdout\n{stdout}"
            );
        }
    }
}

/// Kills the guide's process group (its leader is this child) when the test ends, passed or
/// not.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn wait_output(
    child: std::process::Child,
    within: Duration,
    n: usize,
    block: &str,
) -> std::process::Output {
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    // Read both pipes to the end while waiting, so that a talkative block cannot fill them.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(within) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("block {n} did not finish within {within:?}:\n{block}");
        }
    }
}
