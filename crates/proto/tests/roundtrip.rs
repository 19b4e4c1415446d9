//! Property tests: every message round-trips through JSON, and no input panics the decoders.

use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_proto::*;

fn peer_id() -> impl Strategy<Value = PeerId> {
    any::<[u8; 16]>().prop_map(PeerId::from_bytes)
}

fn room() -> impl Strategy<Value = RoomCode> {
    proptest::collection::vec(any::<u8>(), RoomCode::MIN_LEN..=RoomCode::MAX_LEN)
        .prop_map(|i| RoomCode::from_indices(&i).expect("6 to 16 indices make a code"))
}

fn conn() -> impl Strategy<Value = ConnId> {
    "[A-Za-z0-9_.-]{1,64}".prop_map(|s| s.parse().expect("strategy yields valid conn ids"))
}

fn id() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(0u64..(1 << 53))
}

fn small_text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        small_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for an optional field: JSON `null` there means "absent", so it is left out.
fn present_value() -> impl Strategy<Value = Value> {
    json_value().prop_filter("null reads back as absent", |v| !v.is_null())
}

fn signal_data() -> impl Strategy<Value = SignalData> {
    prop_oneof![
        (small_text(), any::<u32>()).prop_map(|(sdp, session)| SignalData::Offer { sdp, session }),
        (small_text(), any::<u32>()).prop_map(|(sdp, session)| SignalData::Answer { sdp, session }),
        (small_text(), proptest::option::of(small_text()))
            .prop_map(|(candidate, mid)| SignalData::Candidate { candidate, mid }),
        Just(SignalData::EndOfCandidates),
        Just(SignalData::Restart),
        proptest::option::of(small_text()).prop_map(|reason| SignalData::Bye { reason }),
        proptest::option::of(present_value()).prop_map(|meta| SignalData::Request { meta }),
        Just(SignalData::Accept),
        proptest::option::of(small_text()).prop_map(|reason| SignalData::Reject { reason }),
        (small_text(), small_text(), small_text()).prop_map(|(key, public_key, signature)| SignalData::RelayKey {
            key,
            public_key,
            signature
        }),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            id(),
            small_text(),
            small_text(),
            small_text(),
            proptest::option::of(small_text()),
            proptest::option::of(small_text())
        )
            .prop_map(|(id, public_key, signature, server, resume_token, auth_token)| {
                ClientMessage::Hello(Hello { id, v: 1, public_key, signature, server, resume_token, auth_token })
            }),
        (id(), proptest::option::of(small_text()), proptest::option::of(1u32..100))
            .prop_map(|(id, password, max_peers)| ClientMessage::CreateRoom(CreateRoom { id, password, max_peers })),
        (id(), room(), proptest::option::of(small_text()), proptest::option::of(present_value())).prop_map(
            |(id, room, password, meta)| { ClientMessage::Join(Join { id, room, password, meta, recreate: false }) }
        ),
        (id(), room()).prop_map(|(id, room)| ClientMessage::Leave(Leave { id, room })),
        (id(), peer_id(), conn(), signal_data())
            .prop_map(|(id, to, conn, data)| ClientMessage::Signal(SignalRequest { id, to, conn, data: data.into() })),
        (id(), peer_id(), json_value()).prop_map(|(id, to, body)| ClientMessage::Mail(MailRequest { id, to, body })),
        (id(), proptest::collection::vec(any::<u64>(), 0..8))
            .prop_map(|(id, mail_ids)| ClientMessage::AckMail(AckMail { id, mail_ids })),
        (id(), proptest::collection::vec(peer_id(), 0..8))
            .prop_map(|(id, peers)| ClientMessage::Watch(Watch { id, peers })),
        (id(), proptest::collection::vec(peer_id(), 0..8))
            .prop_map(|(id, peers)| ClientMessage::Unwatch(Watch { id, peers })),
        id().prop_map(|id| ClientMessage::IceServers(Ping { id })),
        id().prop_map(|id| ClientMessage::Ping(Ping { id })),
    ]
}

fn ice_server() -> impl Strategy<Value = IceServer> {
    (
        proptest::collection::vec(small_text(), 1..3),
        proptest::option::of(small_text()),
        proptest::option::of(small_text()),
        proptest::option::of(any::<u32>().prop_map(u64::from)),
    )
        .prop_map(|(urls, username, credential, expires_at)| IceServer { urls, username, credential, expires_at })
}

fn peer_info() -> impl Strategy<Value = PeerInfo> {
    (peer_id(), proptest::option::of(present_value())).prop_map(|(peer_id, meta)| PeerInfo { peer_id, meta })
}

fn joined_room() -> impl Strategy<Value = JoinedRoom> {
    (id(), room(), proptest::collection::vec(peer_info(), 0..4), peer_id())
        .prop_map(|(re, room, peers, host)| JoinedRoom { re, room, peers, host })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        small_text().prop_map(|nonce| ServerMessage::Challenge { v: 1, nonce }),
        (
            id(),
            peer_id(),
            small_text(),
            any::<bool>(),
            proptest::collection::vec(joined_room(), 0..3),
            proptest::collection::vec(ice_server(), 0..3)
        )
            .prop_map(|(re, peer_id, resume_token, resumed, rooms, ice_servers)| {
                ServerMessage::Welcome(Box::new(Welcome {
                    re,
                    v: 1,
                    peer_id,
                    resume_token,
                    resumed,
                    rooms,
                    ice_servers,
                    limits: Limits::default(),
                }))
            }),
        (id(), room()).prop_map(|(re, room)| ServerMessage::RoomCreated { re, room }),
        joined_room().prop_map(ServerMessage::Joined),
        (room(), peer_info()).prop_map(|(room, peer)| ServerMessage::PeerJoined { room, peer }),
        (room(), peer_id()).prop_map(|(room, peer_id)| ServerMessage::PeerLeft { room, peer_id }),
        (room(), peer_id()).prop_map(|(room, host)| ServerMessage::HostChanged { room, host }),
        (peer_id(), conn(), signal_data()).prop_map(|(from, conn, data)| ServerMessage::Signal {
            from,
            conn,
            data: data.into()
        }),
        (peer_id(), conn()).prop_map(|(to, conn)| ServerMessage::Expired { to, conn }),
        (any::<u64>(), peer_id(), json_value(), any::<u64>())
            .prop_map(|(mail_id, from, body, sent_at)| ServerMessage::Mail { mail_id, from, body, sent_at }),
        (id(), any::<u64>()).prop_map(|(re, mail_id)| ServerMessage::MailAccepted { re, mail_id }),
        (peer_id(), any::<bool>()).prop_map(|(peer_id, online)| ServerMessage::Presence { peer_id, online }),
        (id(), proptest::collection::vec(ice_server(), 0..3))
            .prop_map(|(re, ice_servers)| ServerMessage::IceServers { re, ice_servers }),
        id().prop_map(|re| ServerMessage::Ok { re }),
        id().prop_map(|re| ServerMessage::Pong { re }),
        (id(), proptest::sample::select(ErrorCode::ALL.to_vec()), small_text())
            .prop_map(|(re, code, message)| ServerMessage::Error { re, code, message }),
    ]
}

/// Frames that look like protocol messages with a field broken.
fn near_miss() -> impl Strategy<Value = String> {
    (client_message(), "[a-z_]{1,12}", json_value()).prop_map(|(msg, key, junk)| {
        let mut value = serde_json::to_value(&msg).expect("messages serialize");
        if let Some(obj) = value.as_object_mut() {
            obj.insert(key, junk);
        }
        value.to_string()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn client_messages_round_trip(msg in client_message()) {
        let text = msg.encode();
        let back: ClientMessage = serde_json::from_str(&text).expect("own encoding decodes");
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn server_messages_round_trip(msg in server_message()) {
        let text = msg.encode();
        prop_assert_eq!(ServerMessage::decode(&text), Ok(msg));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let limits = Limits::default();
        let _ = ClientMessage::decode(&text, &limits);
        let _ = ServerMessage::decode(&text);
        let _ = RelayFrame::decode(&bytes);
    }

    #[test]
    fn near_misses_decode_or_fail_cleanly(text in near_miss()) {
        match ClientMessage::decode(&text, &Limits::default()) {
            Ok(msg) => prop_assert_eq!(ClientMessage::decode(&msg.encode(), &Limits::default()), Ok(msg)),
            Err(failure) => prop_assert!(!failure.error.to_string().is_empty()),
        }
    }
}

#[test]
fn decode_errors_are_classified() {
    let limits = Limits::default();
    let err = |text: &str| ClientMessage::decode(text, &limits).expect_err("must fail");
    assert!(matches!(err("{nope").error, DecodeError::Malformed(_)));
    assert!(matches!(err("[1,2]").error, DecodeError::Malformed(_)));
    assert!(matches!(err(r#"{"id":3}"#).error, DecodeError::Malformed(_)));
    let unknown = err(r#"{"type":"teleport","id":4}"#);
    assert_eq!(unknown.re, Some(4));
    assert!(matches!(unknown.error, DecodeError::UnknownType(ref t) if t == "teleport"));
    let missing = err(r#"{"type":"join","id":5}"#);
    assert_eq!(missing.re, Some(5));
    assert!(matches!(missing.error, DecodeError::InvalidFields { ref kind, .. } if kind == "join"));
    let bad_room = err(r#"{"type":"join","room":"ab!"}"#);
    assert_eq!(bad_room.error.code(), ErrorCode::BadRequest);
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70_000));
    assert_eq!(err(&big).error.code(), ErrorCode::TooLarge);
    let big_meta = format!(r#"{{"type":"join","id":9,"room":"ABCDEF","meta":"{}"}}"#, "x".repeat(2000));
    let failure = err(&big_meta);
    assert_eq!((failure.re, failure.error.code()), (Some(9), ErrorCode::TooLarge));
    assert!(
        err(r#"{"type":"signal","to":"00","conn":"c","data":{"kind":"offer","sdp":""}}"#).error.code()
            == ErrorCode::BadRequest
    );
    assert!(
        err(r#"{"type":"signal","to":"000102030405060708090a0b0c0d0e0f","conn":"c","data":{"kind":"warp"}}"#)
            .error
            .code()
            == ErrorCode::BadRequest
    );
}

#[test]
fn wire_names_are_snake_case() {
    let text = ClientMessage::CreateRoom(CreateRoom::default()).encode();
    assert_eq!(text, r#"{"type":"create_room"}"#);
    let text = ServerMessage::error(Some(1), ErrorCode::RoomFull, "full").encode();
    assert_eq!(text, r#"{"type":"error","re":1,"code":"room_full","message":"full"}"#);
    for code in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(code).expect("codes serialize"), json!(code.as_str()));
    }
}

#[test]
fn the_type_may_come_anywhere_in_the_object() {
    let limits = Limits::default();
    let late = ClientMessage::decode(r#"{"id":7,"room":"abc123","type":"join"}"#, &limits).expect("decodes");
    let first = ClientMessage::decode(r#"{"type":"join","id":7,"room":"ABC123"}"#, &limits).expect("decodes");
    assert_eq!(late, first);
    let unknown = ClientMessage::decode(r#"{"id":8,"type":"warp"}"#, &limits).expect_err("unknown type");
    assert_eq!(unknown.re, Some(8));
    assert!(matches!(unknown.error, DecodeError::UnknownType(ref t) if t == "warp"));
    let not_string = ClientMessage::decode(r#"{"id":9,"type":5}"#, &limits).expect_err("bad type");
    assert_eq!(not_string.error.code(), ErrorCode::BadRequest);
}
