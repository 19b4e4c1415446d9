//! `switchboard send` and `switchboard recv` in two processes move a file
//! and check its SHA-256.

use crate::common;

use std::io::BufReader;

use common::*;

#[test]
fn send_and_recv_move_a_file_intact() {
    let server = Serve::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("out dir");
    let src = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..3_000_007u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &data).expect("write source");

    let out_dir = out.path().to_str().expect("utf8 path").to_owned();
    let mut recv = peer(&["recv", "--out", &out_dir], &server);
    let mut recv_out = BufReader::new(recv.stdout.take().expect("stdout"));
    let room = room_code(&mut recv_out);
    let send = peer(&["send", &room, src.to_str().expect("utf8 path")], &server);
    let (status, _) = wait(send);
    assert!(status.success(), "send exits 0: {status}");
    recv.stdout = Some(recv_out.into_inner());
    let (status, printed) = wait(recv);
    assert!(status.success(), "recv exits 0: {status}");
    assert!(printed.contains("verified"), "{printed:?}");
    let got = std::fs::read(out.path().join("payload.bin")).expect("received file");
    assert_eq!(got, data);
}

#[test]
fn recv_into_a_missing_directory_is_a_clear_error() {
    let server = Serve::start();
    let child = peer(&["recv", "--out", "/nonexistent/switchboard-test"], &server);
    let (status, _) = wait(child);
    assert_eq!(status.code(), Some(1));
}

#[test]
fn send_with_a_bad_room_code_is_a_clear_error() {
    let server = Serve::start();
    let child = peer(&["send", "not a room", "/etc/hostname"], &server);
    let (status, _) = wait(child);
    assert_eq!(status.code(), Some(1));
}
