//! A page behind a firewall that blocks UDP (no WebRTC path, TURN over UDP
//! only) still gets a file from a native peer behind a NAT: the signaling
//! server's relay carries the link, sealed end to end. The page shows the
//! peer connected over the server relay and the received file's hash
//! matches. Needs root (a NAT lab).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::browser::{
    CONNECTED_PATH, Driver, RECEIVED_FILE, page_creates_room, page_url, random_file, wait_for, web_pkg,
};
use common::chaos::ChaosLab;
use common::wait;
use switchboard_natlab::{LabSpec, NatKind};

const PATIENCE: Duration = Duration::from_secs(40);

#[test]
fn a_page_without_udp_receives_a_file_through_the_server_relay() {
    let pkg = web_pkg();
    let chaos = ChaosLab::build_with(
        LabSpec::new().site(NatKind::Open, 1).site(NatKind::PortRestricted, 1),
        &["--web-pkg", &pkg, "--no-turn-tcp"],
    );
    chaos.lab.set_udp_blocked(0, true).expect("block the page's UDP");
    let browser_host = chaos.lab.peer(0, 0);
    let sender_ns = chaos.lab.peer(1, 0).netns().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, expected) = random_file(dir.path(), "over-the-relay.bin", 1 << 20);
    let url = page_url(&chaos.url, "");
    let server = chaos.url.clone();
    let (path_kind, status, received) = browser_host.netns().run(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let driver = Driver::start();
            let page = driver.browser().await;
            let room = page_creates_room(&page, &url, PATIENCE).await;

            let send = sender_ns
                .command(env!("CARGO_BIN_EXE_switchboard"))
                .args(["send", &room, path.to_str().expect("utf-8"), "--server", &server, "--wait", "40"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("switchboard send starts in the sender's namespace");
            let path_kind = wait_for(&page, "the native peer connected", CONNECTED_PATH, PATIENCE).await;
            let (status, _) = tokio::task::spawn_blocking(move || wait(send)).await.expect("wait");
            let received = wait_for(&page, "the received file", RECEIVED_FILE, PATIENCE).await;
            page.close().await.expect("session ends");
            (path_kind, status, received)
        })
    });
    assert_eq!(path_kind, "server relay", "no UDP at the page: the server relay carries the link");
    assert!(status.success(), "send exits 0 once the page confirmed the file: {status}");
    assert_eq!(received["status"], "verified");
    assert_eq!(received["sha256"], expected.as_str());
}
