//! Prints the median time of one bcrypt hash at a cost, on one thread: the benchmark's `hash_ms`.
//! `cargo run --release --example bcrypt_cost -- 12`

use std::time::Instant;

fn main() {
    let cost: u32 = std::env::args().nth(1).and_then(|c| c.parse().ok()).unwrap_or(12);
    let rounds = 9;
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            let _ = bcrypt::hash("benchmark password", cost);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.1}", times[rounds / 2]);
}
