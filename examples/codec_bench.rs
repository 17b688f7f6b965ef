//! Encodes and decodes the golden submit_sm "Hello" in a loop for about two
//! seconds on one core and prints PDUs per second. Run with
//! `cargo run --release --example codec_bench`.

use std::time::{Duration, Instant};

use esmed::smpp::pdu::{ShortMessage, Sm};
use esmed::smpp::{decode, encode, Address, Body, Pdu};

fn main() {
    let fields = (
        Address::new(5, 0, "ESMED"),
        Address::new(1, 1, "447700900123"),
        ShortMessage::new(b"Hello"),
    );
    let (Ok(source), Ok(destination), Ok(short_message)) = fields else {
        eprintln!("the fields do not fit a submit_sm");
        return;
    };
    let pdu = Pdu::new(
        2,
        Body::SubmitSm(Box::new(Sm {
            source,
            destination,
            registered_delivery: 1,
            short_message,
            ..Sm::default()
        })),
    );
    let mut out = Vec::with_capacity(256);
    let mut rounds: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        // Check the clock once per batch so that it does not dominate the loop.
        for _ in 0..10_000 {
            out.clear();
            if let Err(error) = encode(&pdu, &mut out) {
                eprintln!("encode failed: {error}");
                return;
            }
            match decode(&out) {
                Ok(decoded) => {
                    std::hint::black_box(decoded);
                }
                Err(error) => {
                    eprintln!("decode failed: {error}");
                    return;
                }
            }
        }
        rounds += 10_000;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "submit_sm ({} octets) encode+decode: {rounds} in {seconds:.2} s = {:.0} PDUs/s",
        out.len(),
        rounds as f64 / seconds
    );
}
