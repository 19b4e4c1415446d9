//! Bad arguments and bad config files get clear errors and meaningful exit codes.

use std::process::Command;

fn switchboard(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard")).args(args).output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn unknown_flags_are_usage_errors() {
    let (code, err) = switchboard(&["serve", "--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn a_bad_config_file_names_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "max_connections = \"many\"\n").expect("write");
    let (code, err) = switchboard(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid config file") && err.contains("max_connections"), "{err}");
    std::fs::write(&path, "no_such_setting = 1\n").expect("write");
    let (code, err) = switchboard(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1);
    assert!(err.contains("no_such_setting"), "{err}");
    let (code, err) = switchboard(&["serve", "--memory", "--no-turn", "--turn-secret", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("turn_secret"), "{err}");
}

#[test]
fn a_missing_config_file_is_reported() {
    let (code, err) = switchboard(&["serve", "--config", "/nonexistent/switchboard.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn tokens_need_a_valid_peer_id() {
    let (code, err) = switchboard(&["token", "--secret", "s", "--peer", "xyz"]);
    assert_eq!(code, 2);
    assert!(err.contains("peer id"), "{err}");
}
