//! `switchboard nat` against an in-process STUN responder on loopback.

use std::process::Output;

use switchboard_server::stun::StunResponder;

async fn switchboard(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard")).args(args).output().await.expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_loopback_as_open_in_text_and_json() {
    let stun = StunResponder::bind("127.0.0.1:0".parse().expect("addr"), Some("127.0.0.2".parse().expect("ip")), None)
        .await
        .expect("bind");
    let _primary = stun.serve_primary();
    let _alternates = stun.serve_alternates();
    let server = stun.primary_addr().to_string();
    let other = stun.other_address().expect("other").to_string();

    let out = switchboard(&["nat", "--stun", &server, "--bind", "127.0.0.1", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["nat_type"], "open", "{report}");
    assert_eq!(report["mapped"], report["local"]);
    assert_eq!(report["other_address"], other.as_str());
    assert_eq!(report["mapping"], "endpoint-independent");
    assert_eq!(report["filtering"], "endpoint-independent");
    assert_eq!(report["direct_likely"], true);

    let out = switchboard(&["nat", "--stun", &format!("stun:{server}")]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NAT type:           open (no NAT): direct connections are likely"), "{text}");
    assert!(text.contains(&format!("other address {other}")), "{text}");
}

#[tokio::test]
async fn bad_arguments_are_usage_errors() {
    for (args, needle) in [
        (&["nat"][..], "--stun"),
        (&["nat", "--stun", "host:port"], "HOST:PORT"),
        (&["nat", "--stun", "127.0.0.1:3478", "--bind", "not-an-ip"], "--bind"),
    ] {
        let out = switchboard(args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = switchboard(&["nat", "--stun", "127.0.0.1:3478", "--bind", "::1"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no IPv6 address"), "{err}");
}
