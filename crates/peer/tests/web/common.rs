//! Nodes on the server that `scripts/web-test` started, and bounded waits.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use switchboard::proto::RoomCode;
use switchboard::{Event, Message, Node, NodeBuilder, PathKind};

/// How long a test waits for something that should happen quickly.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The signaling URL baked in at build time.
pub fn signaling() -> &'static str {
    match option_env!("SWITCHBOARD_TEST_SIGNALING") {
        Some(url) => url,
        None => panic!(
            "SWITCHBOARD_TEST_SIGNALING is not set: run these tests with scripts/web-test, which starts the server"
        ),
    }
}

/// Starts a node from `builder` on the test server.
pub async fn start(builder: NodeBuilder) -> Node {
    within("node start", builder.signaling(signaling()).start()).await.expect("node starts")
}

/// Resolves after `duration` (a browser timer); only used to bound waits.
pub async fn timer(duration: Duration) {
    let ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        web_sys::window()
            .expect("a window")
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("setTimeout");
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.expect("timer");
}

/// `fut`'s output, or a panic naming `what` after [`PATIENCE`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut limit = pin!(timer(PATIENCE));
    let out = poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if limit.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    out.unwrap_or_else(|| panic!("{what}: nothing within {PATIENCE:?}"))
}

/// Waits for the first event that `pick` maps to `Some`, skipping others.
pub async fn wait_for<T>(node: &Node, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    within(what, async {
        loop {
            let event = node.next_event().await.expect("node open");
            if let Some(t) = pick(event) {
                return t;
            }
        }
    })
    .await
}

/// The next message `node` receives.
pub async fn next_message(node: &Node) -> Message {
    wait_for(node, "a message", |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

/// Two nodes from `builder` in a new room, linked to each other.
pub async fn pair(builder: impl Fn() -> NodeBuilder) -> (Node, Node, RoomCode) {
    pair_over(builder, PathKind::Host, "two nodes in one page link over loopback host candidates").await
}

/// Two nodes from `builder` in a new room, linked to each other over a
/// path of kind `expected` (`why` says why).
pub async fn pair_over(builder: impl Fn() -> NodeBuilder, expected: PathKind, why: &str) -> (Node, Node, RoomCode) {
    let a = start(builder()).await;
    let room = within("create room", a.create_room(None, None)).await.expect("room created");
    within("a joins", a.join(room)).await.expect("a joins");
    let b = start(builder()).await;
    within("b joins", b.join(room)).await.expect("b joins");
    for (node, other) in [(&a, b.id()), (&b, a.id())] {
        let path = wait_for(node, "peer connected", |e| match e {
            Event::PeerConnected { peer, path, .. } if peer == other => Some(path),
            _ => None,
        })
        .await;
        assert_eq!(path, expected, "{why}");
    }
    (a, b, room)
}
