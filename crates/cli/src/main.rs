//! The `switchboard` command: run a signaling server, a demo, or benchmarks.

mod bench;
mod demo;
mod lab;
mod local;
mod nat;
mod peer;
mod serve;
mod test_server;
mod token;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing::Level;

/// Direct, encrypted peer-to-peer data channels over WebRTC.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    /// Say more: -v adds Switchboard's info lines and the dependencies'
    /// warnings, -vv debug lines, -vvv everything. `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the signaling server.
    Serve(Box<serve::ServeArgs>),
    /// Start a server and two peers on loopback and show what happens.
    Demo(demo::DemoArgs),
    /// Chat with the peers of a room: lines from stdin, theirs to stdout.
    Chat(peer::ChatArgs),
    /// Send a file to the peer waiting in a room.
    Send(peer::SendArgs),
    /// Receive a file from a peer (creates a room without a code).
    Recv(peer::RecvArgs),
    /// Mint an auth token for a server started with --auth-secret.
    Token(token::TokenArgs),
    /// Find out how the NAT in front of this machine behaves (RFC 5780).
    Nat(nat::NatArgs),
    /// Build the NAT lab (network namespaces, needs root) and connect every pair of NAT kinds.
    Lab(lab::LabArgs),
    /// Measure the server against a baseline in the same run.
    Bench(bench::BenchArgs),
    /// (internal) A loopback WebSocket echo server: the benchmark's baseline.
    #[command(hide = true)]
    EchoServer(bench::EchoArgs),
    /// (internal) A server the browser tests can kill, restart and cut UDP under.
    #[command(hide = true)]
    TestServer(test_server::TestServerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (ours, filter) = match &cli.command {
        Command::Serve(args) => (Level::INFO, args.log.as_deref()),
        Command::Lab(args) => (Level::WARN, args.log.as_deref()),
        _ => (Level::WARN, None),
    };
    init_logging(cli.verbose, ours, filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Chat(args) => peer::chat(args).await,
            Command::Send(args) => peer::send(args).await,
            Command::Recv(args) => peer::recv(args).await,
            Command::Token(args) => token::run(args),
            Command::Nat(args) => nat::run(args).await,
            Command::Lab(args) => tokio::task::spawn_blocking(move || lab::run(args)).await?,
            Command::Bench(args) => bench::run(args).await,
            Command::EchoServer(args) => bench::echo_server(args).await,
            Command::TestServer(args) => test_server::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<peer::Exit>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Logs to stderr, in colour only on a terminal (and without `NO_COLOR`).
///
/// `RUST_LOG` wins, then `filter` (a command's `--log`). Otherwise
/// Switchboard's own crates log from `ours` up, one level more per `-v`,
/// and dependencies stay quiet: their lines (a TURN client's retries, say)
/// mean little to a user and show from `-v` on.
fn init_logging(verbose: u8, ours: Level, filter: Option<&str>) {
    let spec = match (std::env::var("RUST_LOG"), filter) {
        (Ok(env), _) if !env.is_empty() => env,
        (_, Some(filter)) => filter.to_owned(),
        _ => default_filter(verbose, ours),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("warning: ignoring the log filter {spec:?}: {e}");
        tracing_subscriber::EnvFilter::new(default_filter(verbose, ours))
    });
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Switchboard's crates (their targets all start with `switchboard`) from
/// `ours` raised by `verbose` steps; dependencies off, then warn, info,
/// debug, trace as `verbose` grows.
fn default_filter(verbose: u8, ours: Level) -> String {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let base = LEVELS.iter().position(|l| ours.as_str().eq_ignore_ascii_case(l)).unwrap_or(1);
    let ours = LEVELS[(base + usize::from(verbose)).min(4)];
    let deps = match verbose {
        0 => "off",
        n => LEVELS[usize::from(n).min(4)],
    };
    format!("{deps},switchboard={ours}")
}

/// Raises the open-file limit to its hard maximum (each connection is a file).
fn raise_fd_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}
