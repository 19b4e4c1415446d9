//! A crafted link cannot put the page into a stranger's room or on a
//! stranger's server: `?room=CODE` fills in the code and waits for the user
//! to press Join; `?server=` naming any other host is refused, shown as an
//! error, and nothing connects there.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use common::Serve;
use common::browser::{Driver, isolated, library_connected, library_peer, page_url, wait_for, web_pkg};
use switchboard::proto::PeerId;

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn a_room_link_does_not_join_until_join_is_pressed() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let stranger = library_peer(&serve.url, None).await;
        let room = stranger.create_room(None, None).await.expect("room");
        stranger.join(room).await.expect("join");

        let driver = Driver::start();
        let page = driver.browser().await;
        page.goto(&page_url(&serve.url, &format!("?room={room}"))).await.expect("page loads");
        // Today's page joins at once and never fills in the code.
        let offered = wait_for(
            &page,
            "the link's room offered",
            "const s = document.getElementById('status'), code = document.getElementById('room-code').value; \
             return s.dataset.peer && code ? { me: s.dataset.peer, code, \
               text: document.getElementById('room').textContent, \
               joined: document.getElementById('room').dataset.room ?? null, \
               chat: !document.getElementById('say').disabled } : null;",
            PATIENCE,
        )
        .await;
        assert_eq!(offered["code"], room.to_string(), "{offered}");
        let text = offered["text"].as_str().expect("text");
        assert!(text.contains(&room.to_string()) && text.contains("Join"), "the page shows the room: {text}");
        assert_eq!(offered["joined"], serde_json::Value::Null, "not in the room before Join: {offered}");
        assert_eq!(offered["chat"], false, "{offered}");
        let me: PeerId = offered["me"].as_str().expect("id").parse().expect("a peer id");
        assert!(!stranger.room_peers(room).contains(&me), "the server has not put the page in the room");

        page.execute("document.getElementById('join').click();", vec![]).await.expect("click");
        library_connected(&stranger, me, PATIENCE).await;
        let joined = format!("return document.getElementById('room').dataset.room === '{room}' ? true : null;");
        wait_for(&page, "itself in the room", &joined, PATIENCE).await;
        page.close().await.expect("session ends");
    });
}

/// `switchboard_connections_accepted_total` of the `serve` at `ws_url`.
fn connections_accepted(ws_url: &str) -> u64 {
    let host = ws_url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut stream = std::net::TcpStream::connect(host).expect("connect to serve");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let line = response
        .lines()
        .find(|l| l.starts_with("switchboard_connections_accepted_total "))
        .unwrap_or_else(|| panic!("no connection count in {response}"));
    line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a count")
}

#[test]
fn a_link_to_another_server_is_refused() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let other = Serve::start();
        let own_host = serve.url.trim_start_matches("ws://").trim_end_matches("/ws");
        let other_host = other.url.trim_start_matches("ws://").trim_end_matches("/ws");

        let driver = Driver::start();
        let page = driver.browser().await;
        let links = [
            other.url.clone(),
            format!("wss://{other_host}/ws"),
            // The page's host as a user name: the host is still the other one.
            format!("ws://{own_host}@{other_host}/ws"),
            format!("http://{own_host}/ws"),
            "not-a-url".to_owned(),
        ];
        for link in &links {
            page.goto(&page_url(&serve.url, &format!("?server={link}"))).await.expect("page loads");
            // Today's page connects wherever the link says.
            let shown = wait_for(
                &page,
                "the server of the link refused",
                "const s = document.getElementById('status'); \
                 return s.className === 'error' ? { text: s.textContent, me: s.dataset.peer ?? null, \
                   create: document.getElementById('create').disabled, \
                   join: document.getElementById('join').disabled } : null;",
                PATIENCE,
            )
            .await;
            let text = shown["text"].as_str().expect("text");
            assert!(text.starts_with("refusing the server") && text.contains(link.as_str()), "{link}: {text}");
            assert_eq!(shown["me"], serde_json::Value::Null, "{link}: not connected: {shown}");
            assert_eq!((&shown["create"], &shown["join"]), (&true.into(), &true.into()), "{link}: {shown}");
        }
        assert_eq!(connections_accepted(&other.url), 0, "nothing connected to the other server");

        // The page's own server, named in full, is fine.
        page.goto(&page_url(&serve.url, &format!("?server={}", serve.url))).await.expect("page loads");
        let me =
            wait_for(&page, "its id", "return document.getElementById('status').dataset.peer ?? null;", PATIENCE).await;
        assert!(me.as_str().is_some_and(|id| id.len() == 32), "{me}");
        page.close().await.expect("session ends");
    });
}
