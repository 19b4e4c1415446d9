//! The page works in Firefox: a page in headless Firefox ESR in one
//! namespace of a NAT lab and a native `switchboard send` behind a NAT in
//! another meet through `serve` on the lab's public segment. The page shows
//! the peer connected, with its path, and the received file's hash matches.

use crate::common;

use std::time::{Duration, Instant};

use common::browser::{
    DriverProcess, firefox_capabilities, page_creates_room, page_receives_file, page_url, random_file, web_pkg,
};
use common::chaos::ChaosLab;
use fantoccini::ClientBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use switchboard_natlab::{LabSpec, NatKind};

const PATIENCE: Duration = Duration::from_secs(30);
/// geckodriver's port inside the browser's namespace (a fresh one: free).
const DRIVER_PORT: u16 = 4444;

#[test]
fn a_firefox_page_receives_a_file_from_a_native_peer_behind_a_nat() {
    let pkg = web_pkg();
    let chaos = ChaosLab::build_with(
        LabSpec::new().site(NatKind::Open, 1).site(NatKind::PortRestricted, 1),
        &["--web-pkg", &pkg],
    );
    let browser_host = chaos.lab.peer(0, 0);
    let sender_host = chaos.lab.peer(1, 0);
    let mut command = browser_host.netns().command("geckodriver");
    command.args(["--host", "127.0.0.1", "--port", &DRIVER_PORT.to_string()]);
    let driver = DriverProcess::spawn(command, "geckodriver starts (cargo install geckodriver)");

    let dir = tempfile::tempdir().expect("tempdir");
    let (path, expected) = random_file(dir.path(), "to-firefox.bin", 4 << 20);
    let url = page_url(&chaos.url, "");
    let sender_ns = sender_host.netns().clone();
    let server = chaos.url.clone();
    let outcome = browser_host.netns().run(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let until = Instant::now() + PATIENCE;
            while std::net::TcpStream::connect(("127.0.0.1", DRIVER_PORT)).is_err() {
                assert!(Instant::now() < until, "geckodriver did not listen within {PATIENCE:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let page = ClientBuilder::new(HttpConnector::new())
                .capabilities(firefox_capabilities())
                .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
                .await
                .expect("a Firefox session");
            let room = page_creates_room(&page, &url, PATIENCE).await;

            let outcome = page_receives_file(&page, &sender_ns, &room, &path, &server, PATIENCE).await;
            page.close().await.expect("session ends");
            outcome
        })
    });
    drop(driver);
    let (path_kind, status, received) = outcome;
    // The sender is behind a port-restricted NAT, the page on the public
    // segment: a direct path through the NAT's mapping, or the TURN relay.
    assert!(matches!(path_kind.as_str(), Some("server-reflexive" | "relayed")), "path shown: {path_kind}");
    assert!(status.success(), "send exits 0 once the page confirmed the file: {status}");
    assert_eq!(received["status"], "verified");
    assert_eq!(received["sha256"], expected.as_str());
}
