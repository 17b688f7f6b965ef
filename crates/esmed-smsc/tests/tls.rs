//! The test SMSC over TLS, with a rustls client of its own: what the client sends with the end
//! of the handshake is answered, a window's worth of PDUs crosses several TLS records both
//! ways, and stopping the SMSC ends the session with close_notify.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use esmed_smpp::pdu::{Bind, ShortMessage, Sm};
use esmed_smpp::{decode, encode, Address, Body, CommandStatus, FrameBuffer, Pdu};
use esmed_smsc::{Smsc, SmscConfig, SmscHandle, SmscTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const WAIT: Duration = Duration::from_secs(5);

/// A TLS SMSC with a self-signed certificate for 127.0.0.1, and that certificate's PEM.
fn tls_smsc() -> (SmscHandle, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let smsc = Smsc::start(SmscConfig {
        tls: Some(SmscTls {
            cert_chain_pem: cert_pem.clone().into_bytes(),
            key_pem: certified.key_pair.serialize_pem().into_bytes(),
            client_ca_pem: None,
        }),
        ..SmscConfig::default()
    })
    .unwrap();
    (smsc, cert_pem)
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A client that has queued `first` already: rustls sends it in the same flight as the
/// handshake's Finished, so the SMSC reads both at once.
fn connect(smsc: &SmscHandle, cert_pem: &str, first: &[u8]) -> TlsStream {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "127.0.0.1".try_into().unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    conn.writer().write_all(first).unwrap();
    let socket = TcpStream::connect(smsc.addr()).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    StreamOwned::new(conn, socket)
}

fn recv(stream: &mut TlsStream, frames: &mut FrameBuffer) -> Pdu {
    loop {
        if let Some(frame) = frames.next_frame().unwrap() {
            return decode(frame).unwrap();
        }
        assert!(frames.read_from(stream).unwrap() > 0, "the SMSC closed");
    }
}

fn submit(sequence_number: u32) -> Pdu {
    let sm = Sm {
        destination: Address::new(1, 1, format!("4470000{sequence_number:05}")).unwrap(),
        short_message: ShortMessage::new(vec![b'x'; 140]).unwrap(),
        ..Sm::default()
    };
    Pdu::new(sequence_number, Body::SubmitSm(Box::new(sm)))
}

#[test]
fn a_bound_tls_session_answers_a_window_and_ends_with_close_notify() {
    let (mut smsc, cert_pem) = tls_smsc();
    // The bind goes out right behind the client's Finished.
    let bind = Bind {
        system_id: "esmed".try_into().unwrap(),
        password: "secret".try_into().unwrap(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let mut out = Vec::new();
    encode(&Pdu::new(1, Body::BindTransceiver(bind)), &mut out).unwrap();
    let mut stream = connect(&smsc, &cert_pem, &out);
    let mut frames = FrameBuffer::new(70_000);
    let bound = recv(&mut stream, &mut frames);
    assert!(
        matches!(bound.body, Body::BindTransceiverResp(_)),
        "{bound:?}"
    );
    assert_eq!(bound.command_status, CommandStatus::ESME_ROK);

    // 500 submits of ~200 octets: about 100 KB in one write, many TLS records.
    out.clear();
    for seq in 2..502 {
        encode(&submit(seq), &mut out).unwrap();
    }
    stream.write_all(&out).unwrap();
    for seq in 2..502 {
        let resp = recv(&mut stream, &mut frames);
        assert!(matches!(resp.body, Body::SubmitSmResp(_)), "{resp:?}");
        assert_eq!(resp.sequence_number, seq);
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    }
    assert!(smsc.wait_for_submits(500, WAIT));

    // Stopping the SMSC: the client reads a clean end (close_notify), not a truncation.
    smsc.stop();
    let mut rest = Vec::new();
    let end = stream.read_to_end(&mut rest);
    assert!(end.is_ok(), "no close_notify: {end:?}");
    let unbind_or_nothing = rest.is_empty() || decode_all(&rest).iter().all(is_unbind);
    assert!(unbind_or_nothing, "after the window: {rest:?}");
}

fn decode_all(bytes: &[u8]) -> Vec<Pdu> {
    let mut frames = FrameBuffer::new(70_000);
    let mut reader = io::Cursor::new(bytes);
    let mut pdus = Vec::new();
    while frames.read_from(&mut reader).unwrap_or(0) > 0 {
        while let Some(frame) = frames.next_frame().unwrap() {
            pdus.push(decode(frame).unwrap());
        }
    }
    pdus
}

fn is_unbind(pdu: &Pdu) -> bool {
    matches!(pdu.body, Body::Unbind)
}
