//! The frame format and decoder: round trips of every kind at every split, header checks
//! before allocation (a 4 GiB claim), versions, kinds, replays, gaps, stale epochs, and a
//! proptest over random bytes and random splits.

use proptest::prelude::*;
use weir_cluster::frame::{
    Body, DEFAULT_MAX_FRAME, Decoder, Frame, FrameError, FrameWriter, HEADER_LEN, decode_batch,
    encode_frame,
};

fn bodies() -> Vec<Body> {
    vec![
        Body::Open,
        Body::Data {
            rows: 3,
            payload: postcard::to_allocvec(&vec![1u32, 2, 3]).unwrap(),
        },
        Body::Watermark(-5),
        Body::Barrier(7),
        Body::Marker(u64::MAX),
        Body::Idle,
        Body::Error("boom ✓".into()),
        Body::Cancel,
        Body::Credit {
            rows: 10,
            bytes: 1 << 40,
        },
        Body::End,
    ]
}

fn stream(bodies: &[Body], edge: u64, epoch: u64) -> (Vec<Frame>, Vec<u8>) {
    let mut w = FrameWriter::new(edge, epoch, DEFAULT_MAX_FRAME);
    let mut bytes = Vec::new();
    let frames = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            w.write(b.clone(), &mut bytes).unwrap();
            Frame {
                edge,
                epoch,
                seq: i as u64,
                body: b.clone(),
            }
        })
        .collect();
    (frames, bytes)
}

fn decode_all(bytes: &[u8], splits: &[usize]) -> Result<Vec<Frame>, FrameError> {
    let mut d = Decoder::new(DEFAULT_MAX_FRAME);
    let mut out = Vec::new();
    let mut at = 0;
    for &s in splits.iter().chain(std::iter::once(&bytes.len())) {
        let s = s.clamp(at, bytes.len());
        d.push(&bytes[at..s]);
        at = s;
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
    }
    d.finish()?;
    Ok(out)
}

#[test]
fn every_kind_round_trips_at_every_single_split() {
    let (frames, bytes) = stream(&bodies(), 42, 3);
    for split in 0..=bytes.len() {
        assert_eq!(
            decode_all(&bytes, &[split]).unwrap(),
            frames,
            "split at {split}"
        );
    }
    // Byte by byte.
    let splits: Vec<usize> = (0..bytes.len()).collect();
    assert_eq!(decode_all(&bytes, &splits).unwrap(), frames);
}

#[test]
fn data_frames_carry_postcard_batches() {
    let mut w = FrameWriter::new(1, 0, DEFAULT_MAX_FRAME);
    let mut bytes = Vec::new();
    let batch = vec![("a".to_string(), 1i64), ("bé".to_string(), -2)];
    let n = w.write_data(&batch, &mut bytes).unwrap();
    assert_eq!(n, bytes.len() - HEADER_LEN);
    let f = decode_all(&bytes, &[]).unwrap().remove(0);
    let Body::Data { rows, payload } = f.body else {
        panic!("not data: {:?}", f.body)
    };
    assert_eq!(rows, 2);
    assert_eq!(
        decode_batch::<(String, i64)>(rows, &payload).unwrap(),
        batch
    );
    // A lying row count is a malformed frame, not a wrong batch.
    assert!(matches!(
        decode_batch::<(String, i64)>(3, &payload),
        Err(FrameError::Malformed { kind: "data", .. })
    ));
}

#[test]
fn a_batch_over_the_limit_is_refused_and_writes_nothing() {
    let mut w = FrameWriter::new(1, 0, 16);
    let mut bytes = vec![9u8];
    let big = vec![7u64; 100];
    assert_eq!(
        w.write_data(&big, &mut bytes),
        Err(FrameError::RecordTooLarge {
            size: 4 + 1 + 100,
            max: 16
        })
    );
    assert_eq!(bytes, vec![9u8], "nothing appended");
    assert_eq!(w.next_seq(), 0, "sequence unchanged");
    w.write_data(&[1u8, 2], &mut bytes).unwrap();
    assert_eq!(w.next_seq(), 1);
}

fn header(version: u8, kind: u8, edge: u64, epoch: u64, seq: u64, len: u32) -> Vec<u8> {
    let mut h = vec![version, kind, 0, 0];
    h.extend_from_slice(&edge.to_le_bytes());
    h.extend_from_slice(&epoch.to_le_bytes());
    h.extend_from_slice(&seq.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

#[test]
fn a_4_gib_claim_is_refused_on_its_header_with_nothing_allocated() {
    let mut d = Decoder::new(DEFAULT_MAX_FRAME);
    d.push(&header(1, 2, 0, 0, 0, u32::MAX));
    assert_eq!(
        d.next_frame(),
        Err(FrameError::TooLarge {
            claimed: u32::MAX as u64,
            max: DEFAULT_MAX_FRAME
        })
    );
    assert!(d.capacity() <= 64, "decoder holds {} bytes", d.capacity());
    // The decoder stays failed.
    d.push(&[0; 8]);
    assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));
}

#[test]
fn unknown_versions_and_kinds_are_refused_from_their_first_byte() {
    let mut d = Decoder::new(DEFAULT_MAX_FRAME);
    d.push(&[2]);
    assert_eq!(
        d.next_frame(),
        Err(FrameError::UnknownVersion {
            got: 2,
            expected: 1
        })
    );
    let mut d = Decoder::new(DEFAULT_MAX_FRAME);
    d.push(&[1, 0]);
    assert_eq!(d.next_frame(), Err(FrameError::UnknownKind(0)));
    let mut d = Decoder::new(DEFAULT_MAX_FRAME);
    d.push(&header(1, 11, 0, 0, 0, 0));
    assert_eq!(d.next_frame(), Err(FrameError::UnknownKind(11)));
}

#[test]
fn replayed_skipped_foreign_and_stale_frames_are_refused() {
    let (_, bytes) = stream(&[Body::Open, Body::Idle], 5, 2);
    let one = bytes.len() / 2;
    // The second frame again: a replay.
    let mut replay = bytes.clone();
    replay.extend_from_slice(&bytes[one..]);
    assert_eq!(
        decode_all(&replay, &[]),
        Err(FrameError::Replayed {
            edge: 5,
            expected: 2,
            got: 1
        })
    );
    // Sequence 5 after 1: a gap.
    let mut gap = bytes.clone();
    gap.extend_from_slice(&header(1, 6, 5, 2, 5, 0));
    assert_eq!(
        decode_all(&gap, &[]),
        Err(FrameError::OutOfOrder {
            edge: 5,
            expected: 2,
            got: 5
        })
    );
    let mut foreign = bytes.clone();
    foreign.extend_from_slice(&header(1, 6, 6, 2, 2, 0));
    assert_eq!(
        decode_all(&foreign, &[]),
        Err(FrameError::WrongEdge {
            expected: 5,
            got: 6
        })
    );
    let mut stale = bytes.clone();
    stale.extend_from_slice(&header(1, 6, 5, 1, 2, 0));
    assert_eq!(
        decode_all(&stale, &[]),
        Err(FrameError::StaleEpoch {
            edge: 5,
            current: 2,
            got: 1
        })
    );
    // A first frame must have sequence 0.
    assert!(matches!(
        decode_all(&bytes[one..], &[]),
        Err(FrameError::OutOfOrder {
            expected: 0,
            got: 1,
            ..
        })
    ));
}

#[test]
fn malformed_payloads_and_truncation_are_typed_errors() {
    let mut bad = header(1, 3, 0, 0, 0, 4);
    bad.extend_from_slice(&[0; 4]);
    assert!(matches!(
        decode_all(&bad, &[]),
        Err(FrameError::Malformed {
            kind: "watermark",
            ..
        })
    ));
    let mut bad = header(1, 8, 0, 0, 0, 2);
    bad.extend_from_slice(&[0xff, 0xfe]);
    assert!(matches!(
        decode_all(&bad, &[]),
        Err(FrameError::Malformed { kind: "error", .. })
    ));
    let mut bad = header(1, 2, 0, 0, 0, 2);
    bad.extend_from_slice(&[0, 0]);
    assert!(matches!(
        decode_all(&bad, &[]),
        Err(FrameError::Malformed { kind: "data", .. })
    ));
    let (_, bytes) = stream(&[Body::Barrier(1)], 0, 0);
    assert_eq!(
        decode_all(&bytes[..bytes.len() - 3], &[]),
        Err(FrameError::Truncated {
            buffered: bytes.len() - 3
        })
    );
    let f = Frame {
        edge: 0,
        epoch: 0,
        seq: 0,
        body: Body::Error("x".repeat(20)),
    };
    let mut out = Vec::new();
    assert_eq!(
        encode_frame(&f, 10, &mut out),
        Err(FrameError::RecordTooLarge { size: 20, max: 10 })
    );
    assert!(out.is_empty());
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Open),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(rows, payload)| Body::Data { rows, payload }),
        any::<i64>().prop_map(Body::Watermark),
        any::<u64>().prop_map(Body::Barrier),
        any::<u64>().prop_map(Body::Marker),
        Just(Body::Idle),
        Just(Body::End),
        ".{0,40}".prop_map(Body::Error),
        Just(Body::Cancel),
        (any::<u64>(), any::<u64>()).prop_map(|(rows, bytes)| Body::Credit { rows, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes in any split: the decoder never panics, and never holds more than was pushed.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                splits in proptest::collection::vec(0usize..512, 0..8)) {
        let mut splits = splits;
        splits.sort_unstable();
        let mut d = Decoder::new(256);
        let mut at = 0;
        for s in splits.into_iter().chain(std::iter::once(bytes.len())) {
            let s = s.clamp(at, bytes.len());
            d.push(&bytes[at..s]);
            at = s;
            while let Ok(Some(_)) = d.next_frame() {}
            prop_assert!(d.buffered() <= bytes.len());
        }
        let _ = d.finish();
    }

    /// A valid header with random fields and any claimed length: refused or waited on,
    /// never allocated for.
    #[test]
    fn random_headers_never_allocate_their_claim(kind in any::<u8>(), len in any::<u32>(),
                                                 seq in 0u64..3) {
        let mut d = Decoder::new(1024);
        d.push(&header(1, kind, 0, 0, seq, len));
        let _ = d.next_frame();
        prop_assert!(d.capacity() <= 256);
    }

    /// Every sequence of valid frames round-trips at any split points.
    #[test]
    fn valid_frames_round_trip_at_any_split(bodies in proptest::collection::vec(arb_body(), 1..12),
                                            edge in any::<u64>(), epoch in any::<u64>(),
                                            splits in proptest::collection::vec(0usize..2048, 0..10)) {
        let (frames, bytes) = stream(&bodies, edge, epoch);
        let mut splits = splits;
        splits.sort_unstable();
        prop_assert_eq!(decode_all(&bytes, &splits).unwrap(), frames);
    }

    /// A valid stream with one frame's length field lying (and bits flipped after it): the
    /// frames before it decode as written, the whole never decodes as the stream written, and
    /// the decoder never holds more than was pushed.
    #[test]
    fn a_lying_length_is_refused_after_the_frames_before_it(
        bodies in proptest::collection::vec(arb_body(), 1..8),
        pick in any::<prop::sample::Index>(),
        lie in any::<u32>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..3),
    ) {
        let (frames, mut bytes) = stream(&bodies, 5, 1);
        let i = pick.index(frames.len());
        let at: usize = frames[..i].iter().map(|f| HEADER_LEN + f.body.wire_len()).sum();
        let truth = frames[i].body.wire_len() as u32;
        prop_assume!(lie != truth);
        bytes[at + 28..at + 32].copy_from_slice(&lie.to_le_bytes());
        // Bit flips past the lie only.
        for (ix, bit) in flips {
            let j = at + HEADER_LEN + ix.index(bytes.len() - at - HEADER_LEN + 1);
            if j < bytes.len() {
                bytes[j] ^= 1 << bit;
            }
        }
        let mut d = Decoder::new(DEFAULT_MAX_FRAME);
        d.push(&bytes);
        let mut got = Vec::new();
        let end = loop {
            match d.next_frame() {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break d.finish(),
                Err(e) => break Err(e),
            }
        };
        prop_assert!(d.capacity() <= bytes.len().next_power_of_two());
        prop_assert!(got.len() >= i, "the frames before the lie decode");
        prop_assert_eq!(&got[..i], &frames[..i]);
        prop_assert!(end.is_err() || got != frames, "a lie never decodes as the stream written");
    }
}
