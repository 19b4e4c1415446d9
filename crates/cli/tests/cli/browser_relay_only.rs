//! A page with the relay-only policy (`?relay=1`) reaches a native peer
//! through the server's embedded TURN: the page shows the path as relayed
//! and a file crosses with its hash checked.

use crate::common;

use std::time::Duration;

use common::browser::{Driver, isolated, page_url, random_file, wait_for, web_pkg};
use common::{Serve, peer, wait};

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn a_relay_only_page_goes_through_the_embedded_turn() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let driver = Driver::start();
        let page = driver.browser().await;
        page.goto(&page_url(&serve.url, "?relay=1")).await.expect("page loads");
        wait_for(&page, "its id", "return document.getElementById('status').dataset.peer ?? null;", PATIENCE).await;
        page.execute("document.getElementById('create').click();", vec![]).await.expect("click");
        let room =
            wait_for(&page, "the room code", "return document.getElementById('room').dataset.room ?? null;", PATIENCE)
                .await;
        let room = room.as_str().expect("code").to_owned();

        let dir = tempfile::tempdir().expect("tempdir");
        let (path, expected) = random_file(dir.path(), "relayed.bin", 1 << 20);
        let send = peer(&["send", &room, path.to_str().expect("utf-8")], &serve);
        let connected = wait_for(
            &page,
            "the native peer connected",
            "const r = [...document.querySelectorAll('#peers tr')].find(r => r.querySelector('.path').textContent); \
         return r ? r.querySelector('.path').textContent : null;",
            PATIENCE,
        )
        .await;
        assert_eq!(connected, "relayed", "a relay-only page uses only relayed candidates");
        let (status, _) = wait(send);
        assert!(status.success(), "send exits 0 once the page confirmed the file: {status}");
        let received = wait_for(
            &page,
            "the received file",
            "const li = document.querySelector('#received li[data-status]'); \
         return li ? { status: li.dataset.status, sha256: li.dataset.sha256 } : null;",
            PATIENCE,
        )
        .await;
        assert_eq!(received["status"], "verified");
        assert_eq!(received["sha256"], expected.as_str());
        page.close().await.expect("session ends");
    });
}
