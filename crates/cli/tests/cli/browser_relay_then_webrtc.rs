//! A page whose UDP is blocked links with a native peer through the server
//! relay; once UDP passes again, a new WebRTC session opens and the link
//! moves to it, and chat goes on. Needs root (a NAT lab).

use crate::common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::browser::{CONNECTED_PATH, Driver, page_creates_room, page_url, wait_for, web_pkg};
use common::chaos::ChaosLab;

const PATIENCE: Duration = Duration::from_secs(40);

#[test]
fn a_page_on_the_relay_moves_to_webrtc_when_udp_returns() {
    let chaos = ChaosLab::page_lab_without_udp(&web_pkg());
    let browser_host = chaos.lab.peer(0, 0);
    let sender_ns = chaos.lab.peer(1, 0).netns().clone();
    let url = page_url(&chaos.url, "");
    let server = chaos.url.clone();
    let lab = &chaos.lab;
    let (first, second) = browser_host.netns().run(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let driver = Driver::start();
            let page = driver.browser().await;
            let room = page_creates_room(&page, &url, PATIENCE).await;

            let mut chat = sender_ns
                .command(env!("CARGO_BIN_EXE_switchboard"))
                .args(["chat", &room, "--server", &server, "--wait", "40"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("switchboard chat starts in the sender's namespace");
            let first = wait_for(&page, "the native peer connected", CONNECTED_PATH, PATIENCE).await;

            lab.set_udp_blocked(0, false).expect("let UDP pass");
            let direct = "const r = [...document.querySelectorAll('#peers tr')].find(r => \
                 r.querySelector('.state').textContent === 'connected'); \
                 const p = r && r.querySelector('.path').textContent; \
                 return p && p !== 'server relay' ? p : null;";
            let second = wait_for(&page, "a WebRTC path once UDP passes", direct, PATIENCE).await;

            let stdin = chat.stdin.as_mut().expect("stdin");
            writeln!(stdin, "after the move").expect("write");
            stdin.flush().expect("flush");
            wait_for(
                &page,
                "the native line after the move",
                "return document.getElementById('log').textContent.includes('after the move') ? true : null;",
                PATIENCE,
            )
            .await;
            page.close().await.expect("session ends");
            let _ = chat.kill();
            let _ = chat.wait();
            (first, second)
        })
    });
    assert_eq!(first, "server relay", "no UDP at the page: the server relay carries the link");
    assert!(matches!(second.as_str(), Some("host" | "server-reflexive" | "relayed")), "then WebRTC: {second}");
}
