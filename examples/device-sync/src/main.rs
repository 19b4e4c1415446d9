//! Device sync: one user's devices keep in touch through a signaling
//! server, with no room to share.
//!
//! Three devices (a laptop, a phone, a tablet) each keep their identity
//! and their trust book on disk. They were paired once: the laptop trusts
//! the phone and the tablet, and each of them trusts the laptop. Then:
//!
//! 1. the laptop and the tablet come online and link by themselves;
//! 2. the phone is offline; the laptop mails it;
//! 3. the phone comes online (its identity and trust read back from disk),
//!    gets the mail, and is linked with the laptop without anyone asking;
//! 4. two groups ("photos" and "notes") share that one link, each on a
//!    channel of its own, and their messages stay apart;
//! 5. a fourth device nobody trusts asks the laptop for a link: the
//!    laptop's application hears of it and refuses.
//!
//! The signaling server runs in this process (with a mailbox file), on
//! 127.0.0.1; everything stays on this machine.
//!
//! Run: `cargo run --manifest-path examples/device-sync/Cargo.toml`.
//! Exit code 0 when every step happened, within 20 s each.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use switchboard::proto::PeerId;
use switchboard::{ChannelConfig, Event, HostCandidates, Identity, Node, Trust};
use switchboard_server::{Server, ServerConfig};

type Error = Box<dyn std::error::Error>;

const STEP: Duration = Duration::from_secs(20);
const GROUPS: [&str; 2] = ["photos", "notes"];

/// A directory of this run's own, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("switchboard-device-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fut`, or an error naming `what` after [`STEP`].
async fn step<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(STEP, fut).await.map_err(|_| format!("{what}: nothing within {STEP:?}").into())
}

/// The first event of `node` that `pick` takes.
async fn until<T>(node: &Node, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> Result<T, Error> {
    step(what, async {
        loop {
            match node.next_event().await {
                Some(e) => {
                    if let Some(t) = pick(e) {
                        return Ok(t);
                    }
                }
                None => return Err(format!("{what}: the node closed").into()),
            }
        }
    })
    .await?
}

/// A device of the user: identity and trust book in `dir`, one channel per group.
async fn device(dir: &Path, name: &str, url: &str) -> Result<Node, Error> {
    let identity = Identity::load_or_create(&dir.join(format!("{name}.key")))?;
    let mut builder = Node::builder()
        .signaling(url)
        .host_candidates(HostCandidates::Loopback)
        .identity(identity)
        .trust_store(dir.join(format!("{name}.trust.json")).to_string_lossy());
    for group in GROUPS {
        builder = builder.channel(ChannelConfig::reliable(group));
    }
    Ok(builder.start().await?)
}

/// The peer id of the device `name` (its key file is made if missing).
fn id_of(dir: &Path, name: &str) -> Result<PeerId, Error> {
    Ok(Identity::load_or_create(&dir.join(format!("{name}.key")))?.peer_id())
}

async fn linked(node: &Node, peer: PeerId, what: &str) -> Result<(), Error> {
    until(node, what, |e| matches!(e, Event::PeerConnected { peer: p, .. } if p == peer).then_some(())).await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let scratch = Scratch::new()?;
    let dir = scratch.0.as_path();
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse()?,
        mailbox_path: Some(dir.join("mailbox.db")),
        ..ServerConfig::default()
    };
    let server = Server::builder().config(config).bind().await?;
    let url = format!("ws://{}/ws", server.local_addr());
    tokio::spawn(server.serve(std::future::pending::<()>()));

    // Pairing, done once: each device's trust book on disk.
    let (laptop_id, phone_id, tablet_id) = (id_of(dir, "laptop")?, id_of(dir, "phone")?, id_of(dir, "tablet")?);
    for (name, trusts) in
        [("laptop", vec![phone_id, tablet_id]), ("phone", vec![laptop_id]), ("tablet", vec![laptop_id])]
    {
        let node = device(dir, name, &url).await?;
        for peer in trusts {
            node.set_trust(peer, Some(Trust::Trusted));
        }
        node.close().await;
    }
    println!("paired: laptop {laptop_id}, phone {phone_id}, tablet {tablet_id}");

    // 1. The laptop and the tablet come online and link by themselves.
    let laptop = device(dir, "laptop", &url).await?;
    let tablet = device(dir, "tablet", &url).await?;
    linked(&laptop, tablet_id, "laptop links the tablet").await?;
    linked(&tablet, laptop_id, "tablet links the laptop").await?;
    println!("1. laptop and tablet linked, no room");

    // 2. The phone is offline: the laptop mails it.
    let mail_id = step("mail", laptop.mail(phone_id, &json!({ "group": "notes", "text": "buy milk" }))).await??;
    println!("2. laptop mailed the offline phone (mail {mail_id})");

    // 3. The phone comes online: the mail, and a link to the laptop.
    let phone = device(dir, "phone", &url).await?;
    if phone.trust(laptop_id) != Some(Trust::Trusted) {
        return Err("the phone's trust book did not come back from disk".into());
    }
    let mail = until(&phone, "the phone's mail", |e| match e {
        Event::Mail(m) => Some(m),
        _ => None,
    })
    .await?;
    if mail.from != laptop_id || mail.body["text"] != "buy milk" {
        return Err(format!("unexpected mail {mail:?}").into());
    }
    step("ack", phone.ack_mail(&[mail.id])).await??;
    linked(&phone, laptop_id, "phone links the laptop").await?;
    println!("3. phone online: got {:?} from the laptop, linked with it", mail.body["text"]);

    // 4. Two groups share the one link; their messages stay apart.
    for (group, text) in [("photos", "beach.jpg"), ("notes", "call mum"), ("photos", "sunset.jpg")] {
        step("send", laptop.send(phone_id, group, text.as_bytes().to_vec())).await??;
    }
    let mut by_group: Vec<(String, String)> = Vec::new();
    while by_group.len() < 3 {
        let m = until(&phone, "group messages", |e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .await?;
        by_group.push((m.channel.to_string(), String::from_utf8_lossy(&m.data).into_owned()));
    }
    let photos: Vec<&str> = by_group.iter().filter(|(g, _)| g == "photos").map(|(_, t)| t.as_str()).collect();
    let notes: Vec<&str> = by_group.iter().filter(|(g, _)| g == "notes").map(|(_, t)| t.as_str()).collect();
    if photos != ["beach.jpg", "sunset.jpg"] || notes != ["call mum"] {
        return Err(format!("groups mixed up: {by_group:?}").into());
    }
    println!("4. one link, two groups: photos {photos:?}, notes {notes:?}");

    // 5. A stranger asks the laptop for a link: refused.
    let stranger = device(dir, "stranger", &url).await?;
    stranger.request_link(laptop_id, None)?;
    let asker = until(&laptop, "the stranger's request", |e| match e {
        Event::LinkRequested { peer, .. } => Some(peer),
        _ => None,
    })
    .await?;
    if laptop.trust(asker) == Some(Trust::Trusted) {
        return Err("the stranger counts as trusted".into());
    }
    laptop.reject(asker, Some("not one of this user's devices".into()))?;
    let reason = until(&stranger, "the refusal", |e| match e {
        Event::LinkRejected { reason, .. } => Some(reason),
        Event::PeerConnected { .. } => Some(Some("linked!".into())),
        _ => None,
    })
    .await?;
    if reason.as_deref() != Some("not one of this user's devices") {
        return Err(format!("the stranger got {reason:?}").into());
    }
    let mut peers = laptop.peers();
    peers.sort();
    let mut expected = vec![phone_id, tablet_id];
    expected.sort();
    if peers != expected {
        return Err(format!("the laptop's links are {peers:?}").into());
    }
    println!("5. a stranger asked the laptop and was refused");

    for node in [laptop, phone, tablet, stranger] {
        node.close().await;
    }
    println!("device sync: ok");
    Ok(())
}
