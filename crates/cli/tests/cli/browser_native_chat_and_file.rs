//! A page in headless Chromium and native `switchboard` peers in one room:
//! the page shows the native peer connected, chat lines cross both ways, and
//! a 10 MiB file from `switchboard send` arrives with its hash checked.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::Duration;

use common::browser::{Driver, isolated, page_joins_by_link, random_file, wait_for, web_pkg};
use common::{Serve, peer, peer_with_stderr, room_code, wait};

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn a_page_chats_with_a_native_peer_and_receives_a_ten_mib_file() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let mut chat = peer_with_stderr(&["chat"], &serve);
        let mut chat_out = BufReader::new(chat.stdout.take().expect("stdout"));
        let chat_err = BufReader::new(chat.stderr.take().expect("stderr"));
        let (notes_tx, notes) = mpsc::channel();
        std::thread::spawn(move || {
            for line in chat_err.lines().map_while(Result::ok) {
                eprintln!("chat: {line}");
                if notes_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let room = room_code(&mut chat_out);
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in chat_out.lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let driver = Driver::start();
        let page = driver.browser().await;
        let me = page_joins_by_link(&page, &serve.url, &room, "&log=debug", PATIENCE).await;
        let connected = wait_for(
        &page,
        "the native peer connected",
        "const r = [...document.querySelectorAll('#peers tr')].find(r => r.querySelector('.state').textContent === 'connected' && r.querySelector('.path').textContent); \
         return r ? { peer: r.dataset.peer, path: r.querySelector('.path').textContent } : null;",
        PATIENCE,
    )
    .await;
        let native = connected["peer"].as_str().expect("peer id").to_owned();
        assert_ne!(native, me);
        assert_eq!(connected["path"], "host", "loopback peers connect directly");
        let me_short = &me[..16];
        let seen = loop {
            let line = notes.recv_timeout(PATIENCE).expect("the native chat reports the page connected");
            if line.starts_with(&format!("* {me_short} connected")) {
                break line;
            }
        };
        assert!(seen.contains("(host,"), "both sides of the link name the same path: {seen}");
        let rtt = wait_for(
        &page,
        "the native peer's round trip",
        &format!("const r = document.querySelector('#peers tr[data-peer=\"{native}\"] .rtt'); return r && r.textContent ? r.textContent : null;"),
        PATIENCE,
    )
    .await;
        assert!(rtt.as_str().is_some_and(|t| t.ends_with(" ms")), "RTT shown: {rtt}");

        // Native → page.
        let stdin = chat.stdin.as_mut().expect("stdin");
        writeln!(stdin, "hello from native").expect("write");
        stdin.flush().expect("flush");
        wait_for(
            &page,
            "the native line",
            "return document.getElementById('log').textContent.includes('hello from native') ? true : null;",
            PATIENCE,
        )
        .await;
        // Page → native.
        page.execute(
        "document.getElementById('msg').value = 'hello from the browser'; document.getElementById('chat').requestSubmit();",
        vec![],
    )
    .await
    .expect("submit");
        let line = loop {
            let line = lines.recv_timeout(PATIENCE).expect("the native chat prints the browser's line");
            if line.contains("hello from the browser") {
                break line;
            }
        };
        assert!(line.starts_with(&format!("{me_short}: ")), "{line}");
        drop(chat.stdin.take());
        let (status, _) = wait(chat);
        assert!(status.success(), "chat exits cleanly once the page confirmed its lines: {status}");
        wait_for(
            &page,
            "the native peer gone from the peer table",
            &format!("return document.querySelector('#peers tr[data-peer=\"{native}\"]') ? null : true;"),
            PATIENCE,
        )
        .await;

        // A 10 MiB file from `switchboard send`, checked by the page.
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, expected) = random_file(dir.path(), "ten.bin", 10 << 20);
        let send = peer(&["send", &room, path.to_str().expect("utf-8")], &serve);
        let (status, _) = wait(send);
        assert!(status.success(), "send exits 0 once the page confirmed size and hash: {status}");
        let received = wait_for(
            &page,
            "the received file",
            "const li = document.querySelector('#received li[data-status]'); \
         return li ? { status: li.dataset.status, sha256: li.dataset.sha256, text: li.textContent } : null;",
            PATIENCE,
        )
        .await;
        assert_eq!(received["status"], "verified", "{received}");
        assert_eq!(received["sha256"], expected.as_str());
        assert!(received["text"].as_str().is_some_and(|t| t.contains("ten.bin (10485760 bytes)")), "{received}");
        page.close().await.expect("session ends");
    });
}
