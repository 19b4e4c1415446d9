//! `switchboard nat`: how the NAT in front of this machine behaves (RFC 5780).
//!
//! Exit codes: 0 done (whatever the NAT type, UDP blocked included), 1 the
//! test could not run (name not resolved, socket errors), 2 usage.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use anyhow::Context as _;
use clap::Args;
use switchboard::nat::{NatReport, NatType, detect_nat};

/// The port STUN servers listen on unless told otherwise.
const STUN_PORT: u16 = 3478;

/// Flags of `nat`.
#[derive(Debug, Args)]
pub(crate) struct NatArgs {
    /// The STUN server, HOST:PORT (port 3478 when left out; a `stun:` prefix
    /// is accepted). Mapping and filtering can only be tested against a server
    /// with a second IP address, such as `switchboard serve` with an
    /// alternate STUN IP.
    #[arg(long, value_name = "HOST:PORT")]
    stun: StunServer,
    /// The local IP address to test from (default: any address, the route
    /// to the server picks).
    #[arg(long, value_name = "IP")]
    bind: Option<IpAddr>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// A STUN server as given on the command line.
#[derive(Clone, Debug)]
struct StunServer {
    host: String,
    port: u16,
}

impl fmt::Display for StunServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for StunServer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("stun:").unwrap_or(s);
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(StunServer { host: addr.ip().to_string(), port: addr.port() });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(StunServer { host: ip.to_string(), port: STUN_PORT });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((host, port)) => {
                let port = port.parse::<u16>().ok().filter(|p| *p != 0);
                (host, port.ok_or_else(|| format!("expected HOST:PORT with a port from 1 to 65535, got {s:?}"))?)
            }
            None => (s, STUN_PORT),
        };
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let valid = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
            && (!host.contains(':') || host.parse::<IpAddr>().is_ok());
        if !valid {
            return Err(format!("expected HOST:PORT (a host name or IP address), got {s:?}"));
        }
        Ok(StunServer { host: host.to_owned(), port })
    }
}

pub(crate) async fn run(args: NatArgs) -> anyhow::Result<()> {
    let server = resolve(&args.stun, args.bind).await?;
    let bind = args.bind.unwrap_or(if server.is_ipv4() { IpAddr::from([0, 0, 0, 0]) } else { IpAddr::from([0u16; 8]) });
    if !args.json {
        eprintln!("testing against {server} (up to a few seconds)…");
    }
    // The error's own text names its cause; its source chain would repeat it.
    let report =
        detect_nat(server, bind).await.map_err(|e| anyhow::anyhow!("NAT test against {server} failed: {e}"))?;
    if args.json {
        println!("{}", json(server, &report));
    } else {
        print!("{}", text(server, &report));
    }
    Ok(())
}

/// The server's address: of the family of `bind` if given, else IPv4 first.
async fn resolve(server: &StunServer, bind: Option<IpAddr>) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .with_context(|| format!("cannot resolve {}", server.host))?
        .collect();
    let pick = match bind {
        Some(bind) => addrs.iter().find(|a| a.is_ipv4() == bind.is_ipv4()),
        None => addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()),
    };
    match (pick, bind) {
        (Some(addr), _) => Ok(*addr),
        (None, Some(bind)) if !addrs.is_empty() => {
            let family = if bind.is_ipv4() { "IPv4" } else { "IPv6" };
            anyhow::bail!("{server} has no {family} address to reach from --bind {bind}")
        }
        (None, _) => anyhow::bail!("{} resolves to no address", server.host),
    }
}

fn or_none(addr: Option<SocketAddr>, none: &str) -> String {
    addr.map_or_else(|| none.to_owned(), |a| a.to_string())
}

fn text(server: SocketAddr, report: &NatReport) -> String {
    let other = match report.other_address {
        Some(other) => format!("{server} (other address {other})"),
        None if report.mapped.is_some() => {
            format!("{server} (no other address: mapping and filtering cannot be tested)")
        }
        None => server.to_string(),
    };
    let direct = match report.nat_type {
        NatType::Unknown => "cannot tell",
        t if t.direct_likely() => "likely",
        _ => "unlikely",
    };
    format!(
        "server:             {other}\n\
         local address:      {}\n\
         mapped address:     {}\n\
         mapping:            {}\n\
         filtering:          {}\n\
         NAT type:           {}\n\
         direct connections: {direct}\n",
        report.local,
        or_none(report.mapped, "none (no answer)"),
        report.mapping,
        report.filtering,
        report.nat_type,
    )
}

fn json(server: SocketAddr, report: &NatReport) -> serde_json::Value {
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    serde_json::json!({
        "server": server.to_string(),
        "local": report.local.to_string(),
        "mapped": addr(report.mapped),
        "other_address": addr(report.other_address),
        "mapping": report.mapping.as_str(),
        "filtering": report.filtering.as_str(),
        "nat_type": report.nat_type.as_str(),
        "direct_likely": report.nat_type.direct_likely(),
        "summary": report.nat_type.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(String, u16), String> {
        s.parse::<StunServer>().map(|s| (s.host, s.port))
    }

    #[test]
    fn server_arguments() {
        assert_eq!(parse("127.0.0.1:3479"), Ok(("127.0.0.1".into(), 3479)));
        assert_eq!(parse("stun:example.org:19302"), Ok(("example.org".into(), 19302)));
        assert_eq!(parse("example.org"), Ok(("example.org".into(), 3478)));
        assert_eq!(parse("[::1]:5000"), Ok(("::1".into(), 5000)));
        assert_eq!(parse("::1"), Ok(("::1".into(), 3478)));
        assert!(parse("example.org:x").is_err());
        assert!(parse("example.org:0").is_err());
        assert!(parse("example.org:70000").is_err());
        assert!(parse("").is_err());
        assert!(parse(":3478").is_err());
        assert!(parse("exa mple.org:3478").is_err());
        assert!(parse("http://example.org").is_err());
        assert_eq!(
            parse("[::1]:5000").map(|(h, p)| StunServer { host: h, port: p }.to_string()),
            Ok("[::1]:5000".into())
        );
    }
}
