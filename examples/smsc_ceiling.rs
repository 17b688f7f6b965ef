//! The test SMSC's own ceiling: a raw client (no database, no daemon) pushing N submit_sm
//! with at most W outstanding, against an in-process SMSC or an external one, printing
//! submits per second.
//!
//! `cargo run --release --example smsc_ceiling -- [N] [W] [HOST:PORT]`
//! (defaults 200000, 50, in-process). An external SMSC must accept esmed/secret.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use esmed::smpp::pdu::{Bind, ShortMessage, Sm};
use esmed::smpp::{decode, encode, encode_to_vec, Address, Body, FrameBuffer, Pdu};
use esmed_smsc::{Smsc, SmscConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let window: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let external: Option<SocketAddr> = args.next().map(|a| a.parse()).transpose()?;
    let in_process = match external {
        Some(_) => None,
        None => Some(Smsc::start(SmscConfig {
            journal_in_memory: false,
            ..SmscConfig::default()
        })?),
    };
    let addr = external
        .or(in_process.as_ref().map(|s| s.addr()))
        .ok_or("no address")?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut frames = FrameBuffer::new(70_000);
    bind(&mut stream, &mut frames)?;

    let submit = Body::SubmitSm(Box::new(Sm {
        source: Address::new(5, 0, "ESMED")?,
        destination: Address::new(1, 1, "447700900123")?,
        short_message: ShortMessage::new(b"ceiling test message")?,
        ..Sm::default()
    }));
    let mut template = Pdu::new(0, submit);
    let started = Instant::now();
    let (mut sent, mut answered, mut errors) = (0usize, 0usize, 0usize);
    let mut outstanding = VecDeque::new();
    let mut out = Vec::new();
    while answered < total {
        while sent < total && outstanding.len() < window {
            sent += 1;
            template.sequence_number = sent as u32;
            encode(&template, &mut out)?;
            outstanding.push_back(sent);
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if frames.read_from(&mut stream)? == 0 {
            return Err("SMSC closed the connection".into());
        }
        while let Some(frame) = frames.next_frame()? {
            let pdu = decode(frame)?;
            if matches!(pdu.body, Body::SubmitSmResp(_)) {
                answered += 1;
                errors += usize::from(!pdu.command_status.is_ok());
                outstanding.pop_front();
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{total} submit_sm, window {window}: {elapsed:.3} s, {:.0} submits/s ({errors} errors)",
        total as f64 / elapsed
    );
    Ok(())
}

fn bind(
    stream: &mut TcpStream,
    frames: &mut FrameBuffer,
) -> Result<(), Box<dyn std::error::Error>> {
    let bind = Body::BindTransmitter(Bind {
        system_id: "esmed".try_into()?,
        password: "secret".try_into()?,
        interface_version: 0x34,
        ..Bind::default()
    });
    stream.write_all(&encode_to_vec(&Pdu::new(1, bind))?)?;
    loop {
        if let Some(frame) = frames.next_frame()? {
            let resp = decode(frame)?;
            return match resp.command_status.is_ok() {
                true => Ok(()),
                false => Err(format!("bind refused: {}", resp.command_status).into()),
            };
        }
        if frames.read_from(stream)? == 0 {
            return Err("closed during bind".into());
        }
    }
}
