//! A page behind a firewall that blocks UDP (no WebRTC path, TURN over UDP
//! only) still gets a file from a native peer behind a NAT: the signaling
//! server's relay carries the link, sealed end to end. The page shows the
//! peer connected over the server relay and the received file's hash
//! matches. Needs root (a NAT lab).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::browser::{Driver, page_url, random_file, wait_for, web_pkg};
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
            page.goto(&url).await.expect("page loads");
            let me = "return document.getElementById('status').dataset.peer ?? null;";
            wait_for(&page, "its id", me, PATIENCE).await;
            page.execute("document.getElementById('create').click();", vec![]).await.expect("click");
            let room = "return document.getElementById('room').dataset.room ?? null;";
            let room = wait_for(&page, "the room code", room, PATIENCE).await;
            let room = room.as_str().expect("code").to_owned();

            let send = sender_ns
                .command(env!("CARGO_BIN_EXE_switchboard"))
                .args(["send", &room, path.to_str().expect("utf-8"), "--server", &server, "--wait", "40"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("switchboard send starts in the sender's namespace");
            let connected = "const r = [...document.querySelectorAll('#peers tr')].find(r => \
                 r.querySelector('.state').textContent === 'connected' && r.querySelector('.path').textContent); \
                 return r ? r.querySelector('.path').textContent : null;";
            let path_kind = wait_for(&page, "the native peer connected", connected, PATIENCE).await;
            let (status, _) = tokio::task::spawn_blocking(move || wait(send)).await.expect("wait");
            let received = "const li = document.querySelector('#received li[data-status]'); \
                 return li ? { status: li.dataset.status, sha256: li.dataset.sha256 } : null;";
            let received = wait_for(&page, "the received file", received, PATIENCE).await;
            page.close().await.expect("session ends");
            (path_kind, status, received)
        })
    });
    assert_eq!(path_kind, "server relay", "no UDP at the page: the server relay carries the link");
    assert!(status.success(), "send exits 0 once the page confirmed the file: {status}");
    assert_eq!(received["status"], "verified");
    assert_eq!(received["sha256"], expected.as_str());
}
