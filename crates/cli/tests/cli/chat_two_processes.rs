//! Two `switchboard chat` processes in one room exchange lines both ways.

use crate::common;

use std::io::{BufReader, Read, Write};

use common::*;

#[test]
fn two_chat_processes_exchange_lines() {
    let server = Serve::start();
    let mut b = peer(&["chat"], &server);
    let mut b_out = BufReader::new(b.stdout.take().expect("stdout"));
    let room = room_code(&mut b_out);
    let mut b_in = b.stdin.take().expect("stdin");
    b_in.write_all(b"hello from b\n").expect("write");

    let mut a = peer(&["chat", &room], &server);
    let mut a_in = a.stdin.take().expect("stdin");
    a_in.write_all(b"hello from a\nsecond line\n").expect("write");
    drop(a_in);
    let (status, a_out) = wait(a);
    assert!(status.success(), "a exits 0: {status}");
    assert!(a_out.contains(": hello from b"), "a printed b's line: {a_out:?}");

    drop(b_in);
    b.stdout = None;
    let (status, _) = wait(b);
    let mut rest = String::new();
    b_out.read_to_string(&mut rest).expect("b output");
    assert!(status.success(), "b exits 0: {status}");
    assert!(rest.contains(": hello from a\n") && rest.contains(": second line\n"), "b printed a's lines: {rest:?}");
}
