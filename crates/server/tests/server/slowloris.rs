//! Attack: slowloris. A client that sends its HTTP request headers a byte at
//! a time holds a socket and a task for ever unless the headers have a
//! deadline; the server closes it after `header_read_timeout_secs`.

use crate::common;

use std::time::{Duration, Instant};

use common::{PATIENCE, TestServer};
use switchboard_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let config = ServerConfig { header_read_timeout_secs: 1, ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut buf = [0u8; 256];
    let closed = loop {
        tokio::select! {
            _ = tick.tick() => {
                if tcp.write_all(b"X").await.is_err() {
                    break started.elapsed();
                }
            }
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => break started.elapsed(),
                // An answer (408) before the close is fine too.
                Ok(_) => {}
            },
        }
        assert!(started.elapsed() < PATIENCE, "a trickled request was held open for {PATIENCE:?}");
    };
    assert!(closed >= Duration::from_millis(900), "not before the deadline: {closed:?}");
    // Whole requests are served as usual.
    let (status, body) = common::http_get(server.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    server.stop().await;
}
