//! Running `ip`, `nft`, `tc` and `sysctl`, with their failures turned into [`LabError`]s.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::LabError;

/// Runs `program args…`, feeding it `stdin` if given; returns its stdout.
pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, LabError> {
    let command = describe(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_error(program, &command, source))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The pipe closes when `pipe` drops, so the program sees the end of its input.
        pipe.write_all(text.as_bytes()).map_err(|source| LabError::Spawn { command: command.clone(), source })?;
    }
    let output = child.wait_with_output().map_err(|source| LabError::Spawn { command: command.clone(), source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// `ip args…`.
pub(crate) fn ip(args: &[&str]) -> Result<String, LabError> {
    run("ip", args, None)
}

/// `ip -n ns args…`: an `ip` command acting inside the namespace `ns`.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// `ip netns exec ns program args…`, feeding it `stdin` if given.
pub(crate) fn exec_in(ns: &str, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, LabError> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all, stdin)
}

/// The command line, for error messages.
fn describe(program: &str, args: &[&str]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

fn spawn_error(program: &str, command: &str, source: std::io::Error) -> LabError {
    match (source.kind(), package_of(program)) {
        (std::io::ErrorKind::NotFound, Some((tool, package))) => LabError::ToolMissing { tool, package },
        _ => LabError::Spawn { command: command.to_owned(), source },
    }
}

/// The tools the lab needs and the Debian packages that hold them.
const TOOLS: [(&str, &str); 4] = [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables"), ("sysctl", "procps")];

fn package_of(program: &str) -> Option<(&'static str, &'static str)> {
    TOOLS.iter().copied().find(|(tool, _)| *tool == program)
}

/// Fails with [`LabError::ToolMissing`] unless `tool` is on `PATH`; `package` provides it.
pub(crate) fn require(tool: &'static str, package: &'static str) -> Result<(), LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // `ip netns exec` finds programs through PATH too, so this is the check that matters.
    let found = std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool)));
    if found { Ok(()) } else { Err(LabError::ToolMissing { tool, package }) }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package() {
        let error = spawn_error("nft", "nft -f -", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(error.to_string(), "nft not found: install nftables");
    }

    #[test]
    fn a_failing_command_reports_its_line_and_stderr() {
        let error = run("sh", &["-c", "echo oops >&2; exit 3"], None).expect_err("sh exits with 3");
        let text = error.to_string();
        assert!(text.contains("sh -c echo oops >&2; exit 3"), "{text}");
        assert!(text.contains("oops"), "{text}");
    }

    #[test]
    fn stdin_reaches_the_program() {
        assert_eq!(run("cat", &[], Some("table ip t {}\n")).expect("cat runs"), "table ip t {}\n");
    }
}
