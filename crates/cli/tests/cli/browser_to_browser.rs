//! Two pages in headless Chromium join one room, see each other connected
//! over a direct path, and chat.

use crate::common;

use std::time::Duration;

use common::Serve;
use common::browser::{Driver, isolated, page_joins_by_link, page_url, row_state, wait_for, web_pkg};

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn two_pages_connect_and_chat() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let driver = Driver::start();
        let a = driver.browser().await;
        a.goto(&page_url(&serve.url, "")).await.expect("page loads");
        let a_id =
            wait_for(&a, "its id", "return document.getElementById('status').dataset.peer ?? null;", PATIENCE).await;
        a.execute("document.getElementById('create').click();", vec![]).await.expect("click");
        let room =
            wait_for(&a, "the room code", "return document.getElementById('room').dataset.room ?? null;", PATIENCE)
                .await;
        let room = room.as_str().expect("code").to_owned();

        let b = driver.browser().await;
        let b_id = page_joins_by_link(&b, &serve.url, &room, "", PATIENCE).await;
        let b_id = b_id.as_str();
        let a_id = a_id.as_str().expect("id");
        let on_a = wait_for(&a, "page B connected", &row_state(b_id), PATIENCE).await;
        let on_b = wait_for(&b, "page A connected", &row_state(a_id), PATIENCE).await;
        assert_eq!(on_a["path"], "host");
        assert_eq!(on_b["path"], "host");

        b.execute(
            "document.getElementById('msg').value = 'hello from B'; document.getElementById('chat').requestSubmit();",
            vec![],
        )
        .await
        .expect("submit");
        let shown = wait_for(
            &a,
            "B's line",
            "const t = document.getElementById('log').textContent; return t.includes('hello from B') ? t : null;",
            PATIENCE,
        )
        .await;
        assert!(shown.as_str().is_some_and(|t| t.contains(&format!("{}: hello from B", &b_id[..16]))), "{shown}");
        a.close().await.expect("session ends");
        b.close().await.expect("session ends");
    });
}
