//! The one error type of the lab.

use std::io;

/// Why the lab could not be built, changed or entered.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The process is not root; namespaces, veth pairs and nftables need it.
    #[error("must run as root: network namespaces and nftables need CAP_SYS_ADMIN and CAP_NET_ADMIN")]
    NotRoot,
    /// A program the lab runs is not on `PATH`.
    #[error("{tool} not found: install {package}")]
    ToolMissing {
        /// The program, e.g. `nft`.
        tool: &'static str,
        /// The Debian package that provides it, e.g. `nftables`.
        package: &'static str,
    },
    /// The spec asks for something the lab cannot build.
    #[error("invalid lab spec: {0}")]
    InvalidSpec(String),
    /// A program could not be started at all.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it ended, e.g. `exit status: 2`.
        status: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A thread could not join a namespace.
    #[error("cannot enter network namespace {name}: {reason}")]
    Enter {
        /// The namespace's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The NFQUEUE delayer (used where the kernel has no netem) could not start.
    #[error("cannot delay packets in {netns}: {reason}")]
    Delay {
        /// The namespace.
        netns: String,
        /// What failed.
        reason: String,
    },
}
