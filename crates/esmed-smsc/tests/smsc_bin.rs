//! The `esmed-smsc` binary: prints its port first, answers a bind, takes an MO command on
//! stdin, refuses non-loopback addresses, and exits 0 on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use esmed_smpp::pdu::Bind;
use esmed_smpp::{decode, encode_to_vec, Body, FrameBuffer, Pdu};

const BIN: &str = env!("CARGO_BIN_EXE_esmed-smsc");

#[test]
fn prints_port_answers_sends_mo_and_exits_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--password", "pw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let bind = Body::BindTransceiver(Bind {
        system_id: "esmed".try_into().unwrap(),
        password: "pw".try_into().unwrap(),
        interface_version: 0x34,
        ..Bind::default()
    });
    stream
        .write_all(&encode_to_vec(&Pdu::new(1, bind)).unwrap())
        .unwrap();
    let mut frames = FrameBuffer::new(70_000);
    let mut next = || loop {
        if let Some(frame) = frames.next_frame().unwrap() {
            return decode(frame).unwrap();
        }
        assert!(frames.read_from(&mut stream).unwrap() > 0);
    };
    assert!(next().command_status.is_ok());
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(b"mo 447700900999 ESMED hello there\n")
        .unwrap();
    stdin.flush().unwrap();
    let Body::DeliverSm(sm) = next().body else {
        panic!("expected deliver_sm")
    };
    assert_eq!(sm.short_message, b"hello there");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn refuses_a_remote_address_without_allow_remote() {
    let mut child = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(2));
    assert!(err.contains("--allow-remote"), "{err}");
}
