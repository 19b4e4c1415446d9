//! Attack: reach peers of another tenant. On a server with auth tokens, a
//! peer whose token names one tenant cannot signal a peer of another, its
//! mail never reaches that peer, and presence does not cross tenants.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{TestServer, next_msg};
use switchboard::proto::{ClientMessage, ConnId, ErrorCode, MailRequest, ServerMessage, SignalData, SignalRequest};
use switchboard::{ConnectOptions, Identity, RequestError, SignalingClient};
use switchboard_server::{Claims, Secret, ServerConfig, mint_token};

async fn connect(server: &TestServer, id: &Identity, tenant: &str) -> SignalingClient {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 60;
    let claims = Claims { sub: id.peer_id(), rooms: vec!["*".into()], exp, tenant: Some(tenant.into()) };
    let options = ConnectOptions::default().auth(mint_token(b"hunter2", &claims));
    SignalingClient::connect(&server.url, id, options).await.expect("admitted")
}

async fn mail(from: &mut SignalingClient, to: &Identity, text: &str) {
    let request = MailRequest { id: None, to: to.peer_id(), body: serde_json::json!({ "text": text }) };
    let answer = from.request(ClientMessage::Mail(request)).await;
    assert!(matches!(answer, Ok(ServerMessage::MailAccepted { .. })), "{answer:?}");
}

#[tokio::test]
async fn signals_mail_and_presence_stay_inside_a_tenant() {
    let config = ServerConfig { auth_secret: Some(Secret::new("hunter2")), ..ServerConfig::default() };
    let server = TestServer::start(config).await;
    let (victim_id, colleague_id, intruder_id) = (Identity::generate(), Identity::generate(), Identity::generate());
    let mut victim = connect(&server, &victim_id, "acme").await;
    let mut colleague = connect(&server, &colleague_id, "acme").await;
    let mut intruder = connect(&server, &intruder_id, "globex").await;

    let conn: ConnId = "c1".parse().expect("conn id");
    let signal = |to: &Identity| {
        ClientMessage::Signal(SignalRequest {
            id: None,
            to: to.peer_id(),
            conn: conn.clone(),
            data: SignalData::Accept.into(),
        })
    };
    let refused = intruder.request(signal(&victim_id)).await;
    assert!(
        matches!(refused, Err(RequestError::Refused { code: ErrorCode::Forbidden, .. })),
        "a signal to another tenant is refused: {refused:?}"
    );
    colleague.request(signal(&victim_id)).await.expect("same tenant");
    assert!(
        matches!(next_msg(&mut victim).await, ServerMessage::Signal { from, .. } if from == colleague_id.peer_id())
    );

    // Both watch each other across tenants: each still looks offline.
    for (watcher, watched) in [(&mut victim, &intruder_id), (&mut intruder, &victim_id)] {
        common::watch(watcher, watched.peer_id()).await;
        let seen = next_msg(watcher).await;
        assert_eq!(seen, ServerMessage::Presence { peer_id: watched.peer_id(), online: false });
    }
    assert!(common::sync(&mut victim).await.is_empty(), "watching back across tenants tells nothing");

    victim.close().await.expect("close");
    mail(&mut intruder, &victim_id, "from globex").await;
    mail(&mut colleague, &victim_id, "from acme").await;
    let mut victim = connect(&server, &victim_id, "acme").await;
    let ServerMessage::Mail { from, body, .. } = next_msg(&mut victim).await else { panic!("expected mail") };
    assert_eq!((from, body["text"].as_str()), (colleague_id.peer_id(), Some("from acme")));
    assert!(common::sync(&mut victim).await.is_empty(), "the other tenant's mail is not delivered");
    server.stop().await;
}
