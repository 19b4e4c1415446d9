//! A page behind a firewall that blocks UDP (no WebRTC path, TURN over UDP
//! only) still gets a file from a native peer behind a NAT: the signaling
//! server's relay carries the link, sealed end to end. The page shows the
//! peer connected over the server relay and the received file's hash
//! matches. Needs root (a NAT lab).

use crate::common;

use std::time::Duration;

use common::browser::{Driver, page_creates_room, page_receives_file, page_url, random_file, web_pkg};
use common::chaos::ChaosLab;

const PATIENCE: Duration = Duration::from_secs(40);

#[test]
fn a_page_without_udp_receives_a_file_through_the_server_relay() {
    let chaos = ChaosLab::page_lab_without_udp(&web_pkg());
    let sender = chaos.lab.peer(1, 0).netns();
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, expected) = random_file(dir.path(), "over-the-relay.bin", 1 << 20);
    let url = page_url(&chaos.url, "");
    let (path, status, received) = chaos.lab.peer(0, 0).netns().run(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let driver = Driver::start();
            let page = driver.browser().await;
            let room = page_creates_room(&page, &url, PATIENCE).await;
            let outcome = page_receives_file(&page, sender, &room, &file, &chaos.url, PATIENCE).await;
            page.close().await.expect("session ends");
            outcome
        })
    });
    assert_eq!(path, "server relay", "no UDP at the page: the server relay carries the link");
    assert!(status.success(), "send exits 0 once the page confirmed the file: {status}");
    assert_eq!(received["status"], "verified");
    assert_eq!(received["sha256"], expected.as_str());
}
