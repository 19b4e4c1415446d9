//! A hostile peer in the page's room, made with the library, cannot stop the
//! page, grow its memory or pass for another peer: a message on "data" that
//! is not a file header (not JSON, or a header with a bad field) is logged as
//! an error naming the peer and dropped, and the page goes on; file parts
//! beyond the announced size end the transfer at once and the sender's
//! "done" gets an error; two peers whose ids share their first 8 hex digits
//! look different on the page.

use crate::common;

use std::time::Duration;

use common::Serve;
use common::browser::{
    Driver, isolated, library_connected, library_peer, page_creates_room, page_url, row_state, wait_for, web_pkg,
};
use fantoccini::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard::proto::PeerId;
use switchboard::{Identity, Node, RequestFailed};

const PATIENCE: Duration = Duration::from_secs(30);

/// Two secret keys whose peer ids share their first 8 hex digits (found by
/// trying about 40 000 keys: 32 bits are cheap to match, 64 are not).
const VICTIM: &str = "cb6d591f888d289c2552a47f332717c36d7591adc05b9000989075558ef11a99";
const IMPOSTOR: &str = "ea3674f771a70b19068c4ba31eac86b48ab758e1774111100b71077c5bf7cbd5";

fn identity(secret: &str) -> Identity {
    let bytes: Vec<u8> =
        (0..secret.len()).step_by(2).map(|i| u8::from_str_radix(&secret[i..i + 2], 16).expect("hex")).collect();
    Identity::from_secret_bytes(bytes.try_into().expect("32 bytes"))
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Script: the page's error lines, as `{ text, peer }`.
const ERROR_LINES: &str = "return [...document.querySelectorAll('#log .error')] \
     .map(d => ({ text: d.textContent, peer: d.dataset.peer ?? null }));";

/// Script: `n` error lines once the page shows that many, else `null`.
fn error_lines(n: usize) -> String {
    format!("const l = (() => {{ {ERROR_LINES} }})(); return l.length >= {n} ? l : null;")
}

/// The page creates a room, `nodes` join it; returns once both sides of
/// every link show it connected. Returns the page's id.
async fn room_with(page: &Client, serve: &Serve, nodes: &[&Node]) -> PeerId {
    let room = page_creates_room(page, &page_url(&serve.url, ""), PATIENCE).await;
    let me = wait_for(page, "its id", "return document.getElementById('status').dataset.peer ?? null;", PATIENCE).await;
    let me: PeerId = me.as_str().expect("id").parse().expect("a peer id");
    for node in nodes {
        node.join(room.parse().expect("room code")).await.expect("the peer joins the page's room");
    }
    for node in nodes {
        library_connected(node, me, PATIENCE).await;
        wait_for(page, "the peer connected", &row_state(&node.id().to_string()), PATIENCE).await;
    }
    me
}

/// Sends a whole file as `switchboard send` does and returns the answer to "done".
async fn send_file(node: &Node, to: PeerId, name: &str, data: &[u8]) -> Result<bytes::Bytes, RequestFailed> {
    let header = json!({ "name": name, "size": data.len(), "sha256": sha256_hex(data) });
    node.send_json(to, "data", &header).await.expect("send the header");
    node.send(to, "data", data.to_vec()).await.expect("send the bytes");
    node.request(to, "data", &b"done"[..], PATIENCE).await
}

/// Script: the received item at `index` once it has a status, as
/// `{ status, text, from, title }` (`from`: the sender as shown).
fn received_item(index: usize) -> String {
    format!(
        "const li = document.querySelectorAll('#received li')[{index}]; \
         if (!li || !li.dataset.status) return null; \
         const peer = li.querySelector('.peer'); \
         return {{ status: li.dataset.status, text: li.textContent, \
                   from: peer ? peer.textContent : null, title: peer ? peer.title : null }};"
    )
}

#[test]
fn non_json_and_bad_file_headers_do_not_stop_the_page() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let driver = Driver::start();
        let page = driver.browser().await;
        let hostile = library_peer(&serve.url, None).await;
        let me = room_with(&page, &serve, &[&hostile]).await;
        let id = hostile.id().to_string();

        // None of these is a file header.
        let hash = "ab".repeat(32);
        let bad: Vec<Vec<u8>> = vec![
            b"\xff\xfe not JSON at all".to_vec(),
            b"null".to_vec(),
            br#"["a JSON array"]"#.to_vec(),
            json!({ "name": 7, "size": 1, "sha256": hash }).to_string().into_bytes(),
            json!({ "name": "x".repeat(256), "size": 1, "sha256": hash }).to_string().into_bytes(),
            json!({ "name": "a", "size": -1, "sha256": hash }).to_string().into_bytes(),
            json!({ "name": "a", "size": 1.5, "sha256": hash }).to_string().into_bytes(),
            json!({ "name": "a", "size": (4u64 << 30) + 1, "sha256": hash }).to_string().into_bytes(),
            json!({ "name": "a", "size": 1, "sha256": hash.to_uppercase() }).to_string().into_bytes(),
            json!({ "name": "a", "size": 1 }).to_string().into_bytes(),
        ];
        for message in &bad {
            hostile.send(me, "data", message.clone()).await.expect("send");
        }
        // Today's page stops at the first one: its event loop ends.
        let lines = wait_for(&page, "one error line per bad message", &error_lines(bad.len()), PATIENCE).await;
        let lines = lines.as_array().expect("lines");
        assert_eq!(lines.len(), bad.len(), "{lines:?}");
        for line in lines {
            assert_eq!(line["peer"], id.as_str(), "the line names its peer: {line}");
            assert!(line["text"].as_str().is_some_and(|t| t.starts_with(&id[..16])), "{line}");
        }
        let received = page.execute("return document.querySelectorAll('#received li').length;", vec![]).await;
        assert_eq!(received.expect("script runs"), 0, "no bad header starts a transfer");
        match hostile.request(me, "data", &b"done"[..], PATIENCE).await {
            Err(RequestFailed::Remote(why)) => assert!(why.contains("no file"), "{why}"),
            other => panic!("\"done\" without a file must be refused, got {other:?}"),
        }

        // The page goes on: a chat line and a good file from the same peer.
        hostile.send(me, "control", &b"still listening?"[..]).await.expect("send");
        let line = format!("{}: still listening?", &id[..16]);
        let shown = format!("return document.getElementById('log').textContent.includes('{line}') ? true : null;");
        wait_for(&page, "the chat line after the bad messages", &shown, PATIENCE).await;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        send_file(&hostile, me, "good.bin", &data).await.expect("the page confirms a good file");
        let item = wait_for(&page, "the good file", &received_item(0), PATIENCE).await;
        assert_eq!(item["status"], "verified", "{item}");
        page.close().await.expect("session ends");
    });
}

#[test]
fn file_parts_beyond_the_announced_size_end_the_transfer() {
    isolated(|| async {
        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let driver = Driver::start();
        let page = driver.browser().await;
        let hostile = library_peer(&serve.url, None).await;
        let me = room_with(&page, &serve, &[&hostile]).await;
        let id = hostile.id().to_string();

        // 1000 bytes announced; 600 come, then 1 MiB parts that go beyond.
        let header = json!({ "name": "small.bin", "size": 1000, "sha256": sha256_hex(&[0u8; 1000]) });
        hostile.send_json(me, "data", &header).await.expect("send the header");
        hostile.send(me, "data", vec![0u8; 600]).await.expect("send");
        let part = bytes::Bytes::from(vec![0u8; 1 << 20]);
        for _ in 0..8 {
            hostile.send(me, "data", part.clone()).await.expect("send");
        }
        // Today's page keeps every part until "done"; this one ends the
        // transfer at the first part beyond the size, before any "done".
        let item = wait_for(&page, "the transfer ended", &received_item(0), PATIENCE).await;
        assert_eq!(item["status"], "failed", "{item}");
        let text = item["text"].as_str().expect("text");
        assert!(text.contains("more than the 1000 bytes announced"), "{text}");
        assert!(text.contains("after 600 bytes"), "the parts beyond were dropped: {text}");
        assert_eq!(item["from"], &id[..16], "{item}");
        assert_eq!(item["title"], id.as_str(), "{item}");

        // Parts after the end are dropped without a word; "done" is refused.
        match hostile.request(me, "data", &b"done"[..], PATIENCE).await {
            Err(RequestFailed::Remote(why)) => assert!(why.contains("1000 bytes"), "{why}"),
            other => panic!("\"done\" after the transfer ended must be refused, got {other:?}"),
        }
        let lines = page.execute(ERROR_LINES, vec![]).await.expect("script runs");
        let lines = lines.as_array().expect("lines");
        assert_eq!(lines.len(), 1, "one error line for the ended transfer: {lines:?}");
        assert_eq!(lines[0]["peer"], id.as_str());
        assert_eq!(item_status(&page, 0).await, "failed", "the item keeps its status");

        // The next file from the same peer is received as usual.
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 249) as u8).collect();
        send_file(&hostile, me, "next.bin", &data).await.expect("the page confirms the next file");
        let item = wait_for(&page, "the next file", &received_item(1), PATIENCE).await;
        assert_eq!(item["status"], "verified", "{item}");
        page.close().await.expect("session ends");
    });
}

async fn item_status(page: &Client, index: usize) -> Value {
    let script = format!("return document.querySelectorAll('#received li')[{index}].dataset.status;");
    page.execute(&script, vec![]).await.expect("script runs")
}

#[test]
fn a_peer_whose_id_starts_like_another_cannot_pass_for_it() {
    isolated(|| async {
        let (victim_key, impostor_key) = (identity(VICTIM), identity(IMPOSTOR));
        let (victim_id, impostor_id) = (victim_key.peer_id().to_string(), impostor_key.peer_id().to_string());
        assert_eq!(victim_id[..8], impostor_id[..8], "the keys' ids share their first 8 hex digits");
        assert_ne!(victim_id[..16], impostor_id[..16]);

        let pkg = web_pkg();
        let serve = Serve::start_with(&["--memory", "--web-pkg", &pkg]);
        let driver = Driver::start();
        let page = driver.browser().await;
        let victim = library_peer(&serve.url, Some(victim_key)).await;
        let impostor = library_peer(&serve.url, Some(impostor_key)).await;
        let me = room_with(&page, &serve, &[&victim, &impostor]).await;
        for node in [&victim, &impostor] {
            node.send(me, "control", &b"hello, it is me"[..]).await.expect("send");
        }
        let shown = wait_for(
            &page,
            "both lines",
            "const lines = [...document.querySelectorAll('#log div')] \
               .filter(d => d.textContent.endsWith(': hello, it is me')) \
               .map(d => ({ text: d.textContent, title: d.title })); \
             return lines.length === 2 ? lines : null;",
            PATIENCE,
        )
        .await;
        let rows = page
            .execute(
                "return Object.fromEntries([...document.querySelectorAll('#peers tr')].map(r => \
                   [r.dataset.peer, { text: r.querySelector('.id').textContent, title: r.querySelector('.id').title }]));",
                vec![],
            )
            .await
            .expect("script runs");
        assert_ne!(
            rows[&victim_id]["text"], rows[&impostor_id]["text"],
            "the two peers look alike in the peer table: {rows}"
        );
        for id in [&victim_id, &impostor_id] {
            assert_eq!(rows[id]["text"], &id[..16], "{rows}");
            assert_eq!(rows[id]["title"], id.as_str(), "{rows}");
            let line = json!({ "text": format!("{}: hello, it is me", &id[..16]), "title": id });
            assert!(shown.as_array().expect("lines").contains(&line), "no line {line} in {shown}");
        }
        page.close().await.expect("session ends");
    });
}
