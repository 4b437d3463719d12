//! `weir-bench fuzz-frames`: feeds random and mutated byte streams to the cluster frame decoder
//! (RELIABILITY S23) under `catch_unwind` and prints one JSON line:
//! `{"execs":..,"crashes":..,"refused":..,"decoded":..,"frames":..,"max_input_bytes":..,
//! "max_alloc_bytes":..,"alloc_over_2x_input":..,"seconds":..}`.
//!
//! Each exec takes a valid stream of frames of every kind (written by `FrameWriter`) and either
//! replaces it with random bytes or mutates it: bit flips, truncation, a lying length field
//! (zero, one off, past the end, past the limit, `u32::MAX`), a changed kind or sequence
//! number, spliced random bytes or a duplicated range (a replay). The result is pushed to a
//! `Decoder` in random splits; data payloads that decode are also deserialized as a batch.
//! `decoded` counts inputs that decoded to the end on a frame boundary, `refused` those the
//! decoder (or the batch codec) refused with an error, `crashes` those that panicked.
//! `max_alloc_bytes` is the largest allocation the decoder asked for, through its own
//! accounting: its buffer's capacity and the payloads it copied out; `alloc_over_2x_input`
//! counts inputs for which that exceeded twice the input's length (it must be 0).
//!
//! `cargo run --release -p weir-bench -- fuzz-frames --execs 1e7 --seed 1`

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;
use weir_cluster::frame::{Body, Decoder, FrameWriter, HEADER_LEN, decode_batch};

/// Flags of `weir-bench fuzz-frames`.
#[derive(clap::Args)]
pub struct Args {
    /// Inputs to feed the decoder; accepts `1e7`.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::parse_count)]
    execs: u64,
    /// Seed of the input generator (the same seed gives the same inputs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The decoder's largest payload in bytes.
    #[arg(long, default_value_t = 1 << 16)]
    max_frame: usize,
}

/// splitmix64: a small seeded generator, enough to drive mutations reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Rows of the data frames.
type Row = (u64, String);

/// A valid stream of 1 to 8 frames starting with `Open`, and where each frame starts.
fn valid_stream(rng: &mut Rng) -> (Vec<u8>, Vec<usize>) {
    let mut w = FrameWriter::new(rng.next() % 4, rng.next() % 3, usize::MAX);
    let mut out = Vec::new();
    let mut starts = vec![0];
    let _ = w.write(Body::Open, &mut out);
    for _ in 0..rng.below(8) {
        starts.push(out.len());
        let body = match rng.below(10) {
            0 => {
                let n = rng.below(5);
                let rows: Vec<Row> = (0..n)
                    .map(|i| (i as u64, "x".repeat(rng.below(20))))
                    .collect();
                let _ = w.write_data(&rows, &mut out);
                continue;
            }
            1 => Body::Watermark(rng.next() as i64),
            2 => Body::Barrier(rng.next()),
            3 => Body::Marker(rng.next()),
            4 => Body::Idle,
            5 => Body::End,
            6 => {
                let n = rng.below(30);
                Body::Error("e".repeat(n))
            }
            7 => Body::Cancel,
            8 => Body::Credit {
                rows: rng.next(),
                bytes: rng.next(),
            },
            _ => {
                let rows = rng.next() as u32 % 4;
                let n = rng.below(40);
                Body::Data {
                    rows,
                    payload: rng.bytes(n),
                }
            }
        };
        let _ = w.write(body, &mut out);
    }
    (out, starts)
}

/// A random or mutated input.
fn input(rng: &mut Rng, max_frame: usize) -> Vec<u8> {
    if rng.below(8) == 0 {
        let n = rng.below(256);
        return rng.bytes(n);
    }
    let (mut b, starts) = valid_stream(rng);
    for _ in 0..1 + rng.below(3) {
        let at = starts[rng.below(starts.len())];
        match rng.below(7) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let n = rng.below(b.len() + 1);
                b.truncate(n);
            }
            2 if b.len() >= at + HEADER_LEN => {
                let claim: u32 = match rng.below(6) {
                    0 => 0,
                    1 => u32::from_le_bytes([b[at + 28], b[at + 29], b[at + 30], b[at + 31]])
                        .wrapping_add(1),
                    2 => (b.len() - at) as u32 + rng.below(100) as u32,
                    3 => max_frame as u32 + 1,
                    4 => u32::MAX,
                    _ => rng.next() as u32,
                };
                b[at + 28..at + 32].copy_from_slice(&claim.to_le_bytes());
            }
            3 if b.len() > at + 1 => b[at + 1] = rng.next() as u8 % 12,
            4 if b.len() >= at + 28 => {
                let seq = rng.next() % 10;
                b[at + 20..at + 28].copy_from_slice(&seq.to_le_bytes());
            }
            5 => {
                let i = rng.below(b.len() + 1);
                let n = rng.below(40);
                let junk = rng.bytes(n);
                b.splice(i..i, junk);
            }
            _ => {
                // Replays a range: a frame sent twice, or part of one.
                let from = rng.below(b.len());
                let to = from + rng.below(b.len() - from + 1);
                let copy = b[from..to].to_vec();
                let i = rng.below(b.len() + 1);
                b.splice(i..i, copy);
            }
        }
        if b.is_empty() {
            break;
        }
    }
    b
}

/// What one input did.
enum Outcome {
    /// Decoded to the end of the input on a frame boundary.
    Decoded { frames: u64 },
    /// Refused with an error.
    Refused { frames: u64 },
}

/// Decodes `bytes` pushed in random splits; returns the outcome and the largest allocation.
fn run_one(bytes: &[u8], max_frame: usize, rng: &mut Rng) -> (Outcome, usize) {
    let mut d = Decoder::new(max_frame);
    let mut alloc = 0usize;
    let mut frames = 0u64;
    let mut at = 0;
    while at < bytes.len() {
        let n = 1 + rng.below(bytes.len() - at);
        d.push(&bytes[at..at + n]);
        at += n;
        alloc = alloc.max(d.capacity());
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    frames += 1;
                    if let Body::Data { rows, payload } = &f.body {
                        alloc = alloc.max(payload.len());
                        if decode_batch::<Row>(*rows, payload).is_err() {
                            return (Outcome::Refused { frames }, alloc);
                        }
                    }
                    if let Body::Error(m) = &f.body {
                        alloc = alloc.max(m.len());
                    }
                }
                Ok(None) => break,
                Err(_) => return (Outcome::Refused { frames }, alloc),
            }
        }
    }
    match d.finish() {
        Ok(()) => (Outcome::Decoded { frames }, alloc),
        Err(_) => (Outcome::Refused { frames }, alloc),
    }
}

/// Runs the fuzz command; the exit code (1 when an input panicked or over-allocated).
pub fn main(args: Args) -> i32 {
    let mut rng = Rng(args.seed);
    let (mut crashes, mut refused, mut decoded, mut frames) = (0u64, 0u64, 0u64, 0u64);
    let (mut max_input, mut max_alloc, mut over_bound) = (0usize, 0usize, 0u64);
    let t = Instant::now();
    // Panics are counted, not printed once per input.
    std::panic::set_hook(Box::new(|_| {}));
    for exec in 0..args.execs {
        let bytes = input(&mut rng, args.max_frame);
        max_input = max_input.max(bytes.len());
        let mut split = Rng(rng.next());
        match catch_unwind(AssertUnwindSafe(|| {
            run_one(&bytes, args.max_frame, &mut split)
        })) {
            Ok((outcome, alloc)) => {
                max_alloc = max_alloc.max(alloc);
                // The decoder's buffer grows like a `Vec`: at most twice what was pushed.
                if alloc > 2 * bytes.len().max(8) {
                    over_bound += 1;
                }
                match outcome {
                    Outcome::Decoded { frames: f } => {
                        decoded += 1;
                        frames += f;
                    }
                    Outcome::Refused { frames: f } => {
                        refused += 1;
                        frames += f;
                    }
                }
            }
            Err(_) => {
                crashes += 1;
                if crashes <= 5 {
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    eprintln!("fuzz-frames: exec {exec} panicked on input {hex}");
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    println!(
        "{{\"bench\":\"fuzz_frames\",\"execs\":{},\"seed\":{},\"crashes\":{crashes},\"refused\":{refused},\"decoded\":{decoded},\"frames\":{frames},\"max_input_bytes\":{max_input},\"max_alloc_bytes\":{max_alloc},\"alloc_over_2x_input\":{over_bound},\"max_frame\":{},\"seconds\":{:.1}}}",
        args.execs,
        args.seed,
        args.max_frame,
        t.elapsed().as_secs_f64()
    );
    i32::from(crashes > 0 || over_bound > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_streams_decode_whole_and_a_4_gib_claim_is_refused_on_its_header() {
        let mut rng = Rng(7);
        for _ in 0..200 {
            let (bytes, starts) = valid_stream(&mut rng);
            let mut split = Rng(rng.next());
            let (outcome, alloc) = run_one(&bytes, 1 << 16, &mut split);
            match outcome {
                Outcome::Decoded { frames } => assert_eq!(frames, starts.len() as u64),
                Outcome::Refused { frames } => {
                    // Only a data frame whose random payload is no batch is refused (counted).
                    assert!(frames <= starts.len() as u64);
                }
            }
            assert!(
                alloc <= 2 * bytes.len(),
                "{alloc} for {} bytes",
                bytes.len()
            );
            let mut lie = bytes.clone();
            lie[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
            let (outcome, alloc) = run_one(&lie, 1 << 16, &mut split);
            assert!(matches!(outcome, Outcome::Refused { frames: 0 }));
            assert!(alloc <= 2 * lie.len());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let (mut a, mut b) = (Rng(3), Rng(3));
        for _ in 0..100 {
            assert_eq!(input(&mut a, 1 << 16), input(&mut b, 1 << 16));
        }
    }
}
