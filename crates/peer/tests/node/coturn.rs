//! Debian's coturn as an external TURN server for tests, and a self-signed
//! certificate for its TLS listener.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `turnserver` process on 127.0.0.1; killed on drop.
pub struct Coturn {
    child: Child,
    pub port: u16,
    pub tls_port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port()
}

impl Coturn {
    /// With `tls = Some((cert, key))` it also listens for TLS on `tls_port`.
    pub fn start(secret: &str, tls: Option<(&Path, &Path)>) -> Self {
        // A free port for both UDP and TCP listeners (coturn takes the same number for each).
        let (port, tls_port) = (free_port(), free_port());
        let mut cmd = Command::new("turnserver");
        match tls {
            Some((cert, key)) => {
                cmd.arg("--cert").arg(cert).arg("--pkey").arg(key);
                cmd.args(["--tls-listening-port", &tls_port.to_string()]);
            }
            None => {
                cmd.arg("--no-tls");
            }
        }
        let child = cmd
            .args(["-n", "--no-cli", "--no-dtls", "--use-auth-secret", "--allow-loopback-peers"])
            .arg(format!("--static-auth-secret={secret}"))
            .args(["--realm", "switchboard", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string(), "--min-port", "40000", "--max-port", "44999"])
            .args(["--log-file", "stdout", "--simple-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coturn's turnserver runs (scripts/test installs the coturn package)");
        let coturn = Coturn { child, port, tls_port };
        // Ready once its TCP listener accepts.
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = if tls.is_some() { tls_port } else { port };
        while std::net::TcpStream::connect(("127.0.0.1", ready)).is_err() {
            assert!(Instant::now() < deadline, "coturn did not start listening on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        coturn
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 made with the openssl command;
/// the files are removed on drop.
pub struct SelfSigned {
    pub dir: PathBuf,
}

impl SelfSigned {
    pub fn make() -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-coturn-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl could not make a certificate");
        let status = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("cert.pem"))
            .arg("-out")
            .arg(dir.join("cert.der"))
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl could not convert the certificate");
        SelfSigned { dir }
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
