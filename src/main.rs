//! The esmed daemon's entry point.

fn main() {
    println!("esmed {}", env!("CARGO_PKG_VERSION"));
}
