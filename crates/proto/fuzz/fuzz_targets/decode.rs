//! Every decoder of the protocol, on arbitrary bytes: no panic, and whatever
//! decodes re-encodes to something that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::{ClientMessage, Limits, RelayFrame, ServerMessage};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(msg) = ClientMessage::decode(text, &limits) {
            assert_eq!(ClientMessage::decode(&msg.encode(), &limits).ok(), Some(msg));
        }
        if let Ok(msg) = ServerMessage::decode(text) {
            assert_eq!(ServerMessage::decode(&msg.encode()).ok(), Some(msg));
        }
    }
    if let Ok(frame) = RelayFrame::decode(data) {
        assert_eq!(frame.encode(), data);
    }
});
