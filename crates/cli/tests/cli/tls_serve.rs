//! `serve --tls-cert --tls-key`: https and wss on its one port. Native
//! nodes that trust the private CA link through it; one that does not is
//! refused with a TLS error; a new certificate is taken on SIGHUP and when
//! the files change; a Chromium page loads over https and links with a
//! native peer.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Serve;
use common::browser::{Driver, isolated, library_connected, page_url, wait_for, web_pkg};
use switchboard::{HostCandidates, Node, NodeBuilder, StartError};

const PATIENCE: Duration = Duration::from_secs(30);

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?} failed");
}

/// Certificates made with the openssl command in a directory removed on drop.
struct Pki(PathBuf);

impl Pki {
    fn new() -> Pki {
        // One per test: tests of this binary run side by side.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchboard-tls-serve-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Pki(dir)
    }

    /// A CA `name`; returns its certificate in DER.
    fn ca(&self, name: &str) -> Vec<u8> {
        let (key, pem, der) = (format!("{name}.key"), format!("{name}.pem"), format!("{name}.der"));
        let subject = format!("/CN=Switchboard test {name}");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &key,
                "-out",
                &pem,
            ],
            &self.0,
        );
        openssl(&["x509", "-outform", "DER", "-in", &pem, "-out", &der], &self.0);
        std::fs::read(self.0.join(der)).expect("CA certificate")
    }

    /// A certificate for 127.0.0.1 signed by CA `ca`: (chain PEM, key PEM).
    fn leaf(&self, ca: &str, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            &self.0,
        );
        std::fs::write(
            self.0.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "leaf.ext",
                "-out",
                &pem,
            ],
            &self.0,
        );
        (self.0.join(pem), self.0.join(key))
    }

    /// The base64 SHA-256 of a certificate's public key (Chromium's SPKI pin).
    fn spki(&self, cert: &Path) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | base64",
                cert.display()
            ))
            .output()
            .expect("openssl runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("base64").trim().to_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn node(url: &str, ca: Option<&[u8]>) -> NodeBuilder {
    let b = Node::builder().signaling(url).host_candidates(HostCandidates::Loopback).reconnect_attempts(0);
    match ca {
        Some(der) => b.root_certificate(der.to_vec()),
        None => b,
    }
}

/// Starts nodes trusting `ca` until one connects (the server takes a new
/// certificate a moment after it is told, or after its files change).
async fn connects_with(url: &str, ca: &[u8], what: &str) -> Node {
    let until = Instant::now() + PATIENCE;
    loop {
        match node(url, Some(ca)).start().await {
            Ok(n) => return n,
            Err(e) if Instant::now() < until => {
                refused_meanwhile(&e).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Between attempts: the error must be the TLS one.
async fn refused_meanwhile(e: &StartError) {
    assert!(e.to_string().contains("TLS"), "a TLS error while the old certificate is served: {e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[test]
fn serve_over_tls_with_a_private_ca_and_reload() {
    isolated(|| async {
        let pki = Pki::new();
        let ca1 = pki.ca("ca1");
        let (cert, key) = pki.leaf("ca1", "leaf1");
        let (cert_s, key_s) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
        let serve = Serve::start_with(&["--memory", "--tls-cert", cert_s, "--tls-key", key_s]);
        assert!(serve.url.starts_with("wss://127.0.0.1:"), "{}", serve.url);

        // Two nodes that trust the CA link through the server.
        let a = node(&serve.url, Some(&ca1)).start().await.expect("a connects over wss");
        let b = node(&serve.url, Some(&ca1)).start().await.expect("b connects over wss");
        let room = a.create_room(None, None).await.expect("room");
        a.join(room).await.expect("a joins");
        b.join(room).await.expect("b joins");
        library_connected(&a, b.id(), PATIENCE).await;

        // Without the CA: refused, saying why.
        let refused = node(&serve.url, None).start().await.expect_err("an unknown CA is refused");
        let why = refused.to_string();
        assert!(why.contains("TLS") && why.contains("certificate"), "{why}");
        // Plain ws on a TLS port is refused too.
        let plain = serve.url.replacen("wss://", "ws://", 1);
        assert!(node(&plain, None).start().await.is_err(), "no plain WebSocket on the TLS port");

        // SIGHUP: a certificate of another CA, taken without a restart.
        let ca2 = pki.ca("ca2");
        let (cert2, key2) = pki.leaf("ca2", "leaf2");
        std::fs::copy(&cert2, &cert).expect("new certificate");
        std::fs::copy(&key2, &key).expect("new key");
        let pid = serve.child.id().to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill runs").success());
        connects_with(&serve.url, &ca2, "after SIGHUP").await.close().await;
        // The link made before goes on.
        a.send(b.id(), "reliable", &b"still linked"[..]).await.expect("sent");

        // A change of the files alone is noticed too.
        let ca3 = pki.ca("ca3");
        let (cert3, key3) = pki.leaf("ca3", "leaf3");
        std::fs::copy(&key3, &key).expect("new key");
        std::fs::copy(&cert3, &cert).expect("new certificate");
        connects_with(&serve.url, &ca3, "after the files changed").await.close().await;
        a.close().await;
        b.close().await;
    });
}

#[test]
fn a_page_over_https_links_with_a_native_peer() {
    isolated(|| async {
        let pki = Pki::new();
        let ca = pki.ca("pageca");
        let (cert, key) = pki.leaf("pageca", "pageleaf");
        let pkg = web_pkg();
        let serve = Serve::start_with(&[
            "--memory",
            "--web-pkg",
            &pkg,
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ]);
        let native = node(&serve.url, Some(&ca))
            .channel(switchboard::ChannelConfig::reliable("control"))
            .channel(switchboard::ChannelConfig::reliable("data"))
            .start()
            .await
            .expect("native over wss");
        let room = native.create_room(None, None).await.expect("room");
        native.join(room).await.expect("join");

        // Chromium trusts this one certificate's key, nothing else.
        let driver = Driver::start();
        let page = driver.browser_with(&[format!("--ignore-certificate-errors-spki-list={}", pki.spki(&cert))]).await;
        let url = page_url(&serve.url, &format!("?room={room}"));
        assert!(url.starts_with("https://"), "{url}");
        page.goto(&url).await.expect("the page loads over https");
        let me = wait_for(
            &page,
            "the page connected",
            "return document.getElementById('status').dataset.peer ?? null;",
            PATIENCE,
        )
        .await;
        page.execute("document.getElementById('join').click();", vec![]).await.expect("click");
        let me: switchboard::proto::PeerId = me.as_str().expect("id").parse().expect("a peer id");
        library_connected(&native, me, PATIENCE).await;
        let linked = wait_for(
            &page,
            "the link on the page",
            "return /connected \\(/.test(document.body.innerText) ? true : null;",
            PATIENCE,
        )
        .await;
        assert_eq!(linked, true);
        page.close().await.expect("session ends");
    });
}
