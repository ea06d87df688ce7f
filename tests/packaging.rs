//! What ships around the binary and cannot be run here: the container image (no Docker engine
//! on the CI box) and the systemd unit (systemd is not PID 1 there). These tests hold them to
//! what the rest of the repository does: the image builds with the very steps CI runs, its
//! health check and configurations work with this binary, and the unit starts, checks and
//! reloads the way the README says. `scripts/check-systemd` runs `systemd-analyze` on the unit.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Non-comment lines that run commands (`RUN …` in a Dockerfile, plain lines in a script).
fn commands(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.trim_start_matches("RUN ")
                .trim_end_matches('\\')
                .trim()
                .to_owned()
        })
        .collect()
}

fn config_check(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
        .arg("config")
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn the_image_builds_with_the_steps_ci_runs() {
    let dockerfile = read("Dockerfile");
    let build_stage = dockerfile
        .split("\nFROM ")
        .find(|stage| stage.contains("AS build"))
        .expect("a build stage");
    let docker = commands(build_stage);
    // scripts/run is the build CI's scripts/test compiles too; .ci/run installs with the
    // same script.
    let run = commands(&read("scripts/run"));
    for step in [
        "scripts/install-deps build",
        "cargo build --release --locked",
    ] {
        assert!(
            docker.iter().any(|c| c.starts_with(step)),
            "the Dockerfile's build stage does not run {step:?}"
        );
        assert!(
            run.iter().any(|c| c.starts_with(step)),
            "scripts/run does not run {step:?}"
        );
    }
    assert!(commands(&read(".ci/run"))
        .iter()
        .any(|c| c.starts_with("scripts/install-deps")));
}

#[test]
fn the_image_runs_unprivileged_with_state_in_a_volume_and_a_health_check() {
    let dockerfile = read("Dockerfile");
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(runtime.starts_with("debian:bookworm-slim"), "{runtime}");
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "{user}"
    );
    assert!(runtime.contains("VOLUME [\"/var/lib/dcv-proxy\"]"));
    assert!(runtime.contains(
        "CMD [\"dcv-proxy\", \"health\", \"--config\", \"/etc/dcv-proxy/dcv-proxy.toml\"]"
    ));
    assert!(
        runtime.contains("COPY examples/container/dcv-proxy.toml /etc/dcv-proxy/dcv-proxy.toml")
    );
}

#[test]
fn container_and_kubernetes_configurations_pass_config_check() {
    let out = config_check(&repo("examples/container/dcv-proxy.toml"));
    assert!(out.status.success(), "{out:?}");
    // The ConfigMap's file, as the pod mounts it.
    let yaml = read("examples/kubernetes-pod.yaml");
    let toml: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("dcv-proxy.toml: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or("")))
        .collect();
    assert!(toml.contains("[[certificate]]"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dcv-proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let out = config_check(&path);
    assert!(out.status.success(), "{out:?}");
    // The sidecar's origin is the application on the shared loopback.
    for file in [
        "examples/docker-compose.yml",
        "examples/kubernetes-pod.yaml",
    ] {
        assert!(read(file).contains("--port"), "{file}");
    }
}

#[test]
fn the_systemd_unit_checks_reloads_and_notifies() {
    let unit = read("systemd/dcv-proxy.service");
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .collect()
    };
    assert_eq!(value("Type"), ["notify"]);
    assert_eq!(value("NotifyAccess"), ["all"]);
    assert_eq!(value("User"), ["dcv-proxy"]);
    assert_eq!(value("StateDirectory"), ["dcv-proxy"]);
    assert_eq!(value("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
    let config = "--config /etc/dcv-proxy/dcv-proxy.toml";
    assert_eq!(
        value("ExecStartPre"),
        [format!("/usr/bin/dcv-proxy config check {config}")]
    );
    assert_eq!(
        value("ExecStart"),
        [format!("/usr/bin/dcv-proxy run {config}")]
    );
    assert_eq!(
        value("ExecReload"),
        [
            format!("/usr/bin/dcv-proxy config check {config}"),
            "/bin/kill -HUP $MAINPID".to_owned()
        ]
    );
    for key in [
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "RestrictAddressFamilies",
        "SystemCallFilter",
    ] {
        assert!(!value(key).is_empty(), "{key} is not set");
    }
    // The unit's command lines parse with this binary (clap takes --config after `run`).
    let out = Command::new(env!("CARGO_BIN_EXE_dcv-proxy"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The state directory the unit makes is the default of the shipped configuration.
    assert!(read("conf/dcv-proxy.toml").contains("/var/lib/dcv-proxy"));
    let sysusers = read("systemd/dcv-proxy.sysusers");
    assert!(sysusers
        .lines()
        .any(|l| l.starts_with("u dcv-proxy ") && l.contains("/var/lib/dcv-proxy")));
}
