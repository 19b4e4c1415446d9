//! `switchboard token`: mint an auth token.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use switchboard::proto::PeerId;
use switchboard_server::{Claims, mint_token};

/// Flags of `token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The server's auth secret.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", hide_env_values = true)]
    secret: String,
    /// The peer id the token is for (32 hex digits).
    #[arg(long)]
    peer: PeerId,
    /// Room codes the peer may join; `*` for all rooms and creating rooms.
    #[arg(long = "room", default_value = "*")]
    rooms: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// The tenant the peer belongs to: signals, mail and presence reach only
    /// peers whose tokens name the same tenant.
    #[arg(long)]
    tenant: Option<String>,
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("clock before 1970")?.as_secs();
    let claims = Claims { sub: args.peer, rooms: args.rooms, exp: now + args.ttl, tenant: args.tenant };
    println!("{}", mint_token(args.secret.as_bytes(), &claims));
    Ok(())
}
