//! Framing through the engine: exact frames, errors naming stage and position, completion,
//! cancellation, and round trips of random frames over random chunkings.

use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::TestSource;
use weir_graph::{Flow, Keep, Sink, Source, StageError};
use weir_operators::framing::{
    self, ByteOrder, FramingError, LengthField, delimiter_protocol, simple_framing_protocol,
};
use weir_operators::prelude::*;

mod support;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

type Bytes = Vec<u8>;

/// Runs `chunks` through `flow`; returns what reached the sink and how the stream ended.
async fn frame(
    flow: Flow<Bytes, Bytes>,
    chunks: Vec<Bytes>,
) -> (Vec<Bytes>, Result<(), StageError>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let done = Source::from_iter(chunks)
        .via(flow)
        .run_with(Sink::for_each(move |x| s2.lock().expect("lock").push(x)))
        .expect("starts");
    let r = within(done).await;
    let got = seen.lock().expect("lock").clone();
    (got, r)
}

fn b(s: &str) -> Bytes {
    s.as_bytes().to_vec()
}

fn bs(v: &[&str]) -> Vec<Bytes> {
    v.iter().map(|s| b(s)).collect()
}

#[tokio::test]
async fn delimiter_frames_then_completes() {
    let f = framing::delimiter(b"\n", 8, false).expect("valid");
    let (got, r) = frame(f, bs(&["a\nbc", "\n\nde", "f\n"])).await;
    assert_eq!(got, bs(&["a", "bc", "", "def"]));
    assert!(r.is_ok());
}

#[tokio::test]
async fn delimiter_emits_frames_before_a_too_long_one_then_fails_naming_it() {
    let f = framing::delimiter(b"\n", 3, false).expect("valid");
    let (got, r) = frame(f, bs(&["ab\ncd\n", "efgh"])).await;
    assert_eq!(got, bs(&["ab", "cd"]));
    let e = r.expect_err("too long");
    assert_eq!(e.stage(), Some("delimiter_framing#1"));
    assert_eq!(
        e.downcast_cause::<FramingError>(),
        Some(&FramingError::FrameTooLong {
            offset: 6,
            length: 4,
            max: 3
        })
    );
    assert_eq!(
        e.to_string(),
        "stage 'delimiter_framing#1' failed: frame starting at byte 6 is 4 bytes long, more than the maximum of 3"
    );
}

#[tokio::test]
async fn delimiter_truncation_is_an_error_or_a_final_frame() {
    let strict = framing::delimiter(b"\r\n", 16, false).expect("valid");
    let (got, r) = frame(strict, bs(&["x\r\ny\r"])).await;
    assert_eq!(got, bs(&["x"]));
    assert_eq!(
        r.expect_err("truncated").downcast_cause::<FramingError>(),
        Some(&FramingError::Truncated {
            offset: 3,
            buffered: 2
        })
    );
    let lenient = framing::delimiter(b"\r\n", 16, true).expect("valid");
    let (got, r) = frame(lenient, bs(&["x\r\ny\r"])).await;
    assert_eq!(got, bs(&["x", "y\r"]));
    assert!(r.is_ok());
}

#[tokio::test]
async fn length_field_checks_the_declared_length_before_buffering() {
    // A 4-byte header declaring 2^31 bytes: rejected as soon as the header is in, with only
    // the header buffered.
    let f = framing::length_field(LengthField::new(4, 1024)).expect("valid");
    let ok = vec![0, 0, 0, 2, b'h', b'i'];
    let huge = vec![0x80, 0, 0, 0];
    let (got, r) = frame(f, vec![ok.clone(), huge]).await;
    assert_eq!(got, vec![ok]);
    let e = r.expect_err("too long");
    assert_eq!(e.stage(), Some("length_field_framing#1"));
    assert_eq!(
        e.downcast_cause::<FramingError>(),
        Some(&FramingError::FrameTooLong {
            offset: 6,
            length: 0x8000_0004,
            max: 1024
        })
    );
}

#[tokio::test]
async fn length_field_widths_orders_offsets_and_header_modes() {
    for width in [1usize, 2, 4, 8] {
        for order in [ByteOrder::BigEndian, ByteOrder::LittleEndian] {
            for includes in [false, true] {
                let cfg = LengthField::new(width, 64)
                    .offset(1)
                    .order(order)
                    .includes_header(includes);
                let mut bytes = Vec::new();
                let mut want = Vec::new();
                for payload in [&b"abc"[..], b"", b"z"] {
                    let header = 1 + width;
                    let n = payload.len() + if includes { header } else { 0 };
                    let mut field = (n as u64).to_be_bytes()[8 - width..].to_vec();
                    if order == ByteOrder::LittleEndian {
                        field.reverse();
                    }
                    let mut fr = vec![0xEE];
                    fr.extend(field);
                    fr.extend_from_slice(payload);
                    bytes.extend_from_slice(&fr);
                    want.push(fr);
                }
                let chunks = bytes.chunks(2).map(<[u8]>::to_vec).collect();
                let (got, r) = frame(framing::length_field(cfg).expect("valid"), chunks).await;
                assert_eq!(got, want, "width {width} {order:?} includes {includes}");
                assert!(r.is_ok());
            }
        }
    }
}

#[tokio::test]
async fn json_objects_across_chunks_and_errors() {
    let (got, r) = frame(
        framing::json(64),
        bs(&["[{\"k\":\"a}b\"}", ",{\"n\":{\"m\":\"\\\"}\"}}]"]),
    )
    .await;
    assert_eq!(got, bs(&["{\"k\":\"a}b\"}", "{\"n\":{\"m\":\"\\\"}\"}}"]));
    assert!(r.is_ok());
    let (got, r) = frame(framing::json(8), bs(&["{\"a\":1} {\"b\":", "123456}"])).await;
    assert_eq!(got, bs(&["{\"a\":1}"]));
    assert_eq!(
        r.expect_err("too long").downcast_cause::<FramingError>(),
        Some(&FramingError::FrameTooLong {
            offset: 8,
            length: 9,
            max: 8
        })
    );
}

#[tokio::test]
async fn upstream_failure_passes_through_framing() {
    let src = support::failing(vec![b("a\nb")], "link down");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let done = src
        .via(framing::delimiter(b"\n", 8, false).expect("valid"))
        .run_with(Sink::for_each(move |x| s2.lock().expect("lock").push(x)))
        .expect("starts");
    let e = within(done).await.expect_err("fails");
    assert_eq!(e.message(), "link down");
    assert_eq!(*seen.lock().expect("lock"), bs(&["a"]));
}

#[tokio::test]
async fn downstream_cancellation_cancels_the_byte_source() {
    let g = TestSource::probe::<Bytes>()
        .via(framing::delimiter(b";", 8, false).expect("valid"))
        .to_mat(Sink::head(), Keep::both);
    let (probe, head) = g.run().expect("starts");
    probe.send(b("one;two;thr"));
    assert_eq!(within(head).await.expect("head"), b("one"));
    within(probe.expect_cancellation()).await;
}

#[tokio::test]
async fn simple_framing_protocol_round_trips_through_join() {
    let proto = simple_framing_protocol(16).expect("valid");
    // The transport re-chunks the bytes into 3-byte pieces.
    let transport = Flow::<Bytes, Bytes, ()>::identity()
        .flat_map(|c: Bytes| c.chunks(3).map(<[u8]>::to_vec).collect::<Vec<_>>());
    let msgs = bs(&["hello", "", "weir streams"]);
    let got = Source::from_iter(msgs.clone())
        .via(proto.join(transport))
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(got).await.expect("ok"), msgs);
    // An oversized outgoing message fails the encoder, naming the message.
    let proto = simple_framing_protocol(4).expect("valid");
    let (got, r) = frame(proto.join(Flow::identity()), bs(&["abcd", "abcde"])).await;
    assert_eq!(got, bs(&["abcd"]));
    let e = r.expect_err("too long");
    assert_eq!(e.stage(), Some("length_prefix#1"));
    assert_eq!(
        e.downcast_cause::<FramingError>(),
        Some(&FramingError::MessageTooLong {
            index: 1,
            length: 5,
            max: 4
        })
    );
}

#[tokio::test]
async fn delimiter_protocol_round_trips() {
    let proto = delimiter_protocol(b"\n", 32).expect("valid");
    let msgs = bs(&["a", "bc", ""]);
    let got = Source::from_iter(msgs.clone())
        .via(proto.join(Flow::identity()))
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(got).await.expect("ok"), msgs);
    assert!(matches!(
        delimiter_protocol(b"", 32),
        Err(FramingError::InvalidParameter(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Property tests: framing(encode(frames)) == frames for random frames and random chunkings.

fn rechunk(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts {
        if bytes.is_empty() {
            break;
        }
        let end = (at + 1 + c % 17).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
        if at == bytes.len() {
            break;
        }
    }
    if at < bytes.len() {
        out.push(bytes[at..].to_vec());
    }
    out
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn json_object(keys: &[String]) -> Bytes {
    let mut s = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let esc = k.replace('\\', "\\\\").replace('"', "\\\"");
        s.push_str(&format!("\"{esc}\":{{\"v\":[{i},\"{esc}\"]}}"));
    }
    s.push('}');
    s.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn length_prefixed_frames_survive_any_chunking(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
        width in prop::sample::select(vec![1usize, 2, 4, 8]),
        little in any::<bool>(),
    ) {
        let order = if little { ByteOrder::LittleEndian } else { ByteOrder::BigEndian };
        let mut bytes = Vec::new();
        for f in &frames {
            let mut field = (f.len() as u64).to_be_bytes()[8 - width..].to_vec();
            if little {
                field.reverse();
            }
            bytes.extend(field);
            bytes.extend_from_slice(f);
        }
        let cfg = LengthField::new(width, 40 + width).order(order).strip_header(true);
        let (got, r) = block_on(frame(framing::length_field(cfg).expect("valid"), rechunk(&bytes, &cuts)));
        prop_assert!(r.is_ok());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn simple_protocol_round_trips_any_chunking(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
    ) {
        let proto = simple_framing_protocol(40).expect("valid");
        let cuts2 = cuts.clone();
        let transport = Flow::<Bytes, Bytes, ()>::identity()
            .fold(Vec::new(), |mut acc: Bytes, c: Bytes| { acc.extend(c); acc })
            .flat_map(move |all: Bytes| rechunk(&all, &cuts2));
        let (got, r) = block_on(frame(proto.join(transport), frames.clone()));
        prop_assert!(r.is_ok());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn delimited_frames_survive_any_chunking(
        frames in prop::collection::vec(prop::collection::vec(0u8..=255u8, 0..30), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
    ) {
        // Frames may hold any byte but the two-byte delimiter sequence.
        let frames: Vec<Bytes> = frames
            .into_iter()
            .map(|f| f.into_iter().filter(|&x| x != b'|').collect())
            .collect();
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend_from_slice(f);
            bytes.extend_from_slice(b"|#");
        }
        let f = framing::delimiter(b"|#", 30, false).expect("valid");
        let (got, r) = block_on(frame(f, rechunk(&bytes, &cuts)));
        prop_assert!(r.is_ok());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn json_objects_survive_any_chunking(
        objects in prop::collection::vec(prop::collection::vec("[a-z{}\\[\\]\"\\\\ ]{0,6}", 0..4), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..64),
        in_array in any::<bool>(),
    ) {
        let frames: Vec<Bytes> = objects.iter().map(|k| json_object(k)).collect();
        let mut bytes = Vec::new();
        if in_array {
            bytes.push(b'[');
        }
        for (i, f) in frames.iter().enumerate() {
            if i > 0 {
                bytes.extend_from_slice(if in_array { b",\n" } else { b" " });
            }
            bytes.extend_from_slice(f);
        }
        if in_array {
            bytes.push(b']');
        }
        let (got, r) = block_on(frame(framing::json(4096), rechunk(&bytes, &cuts)));
        prop_assert!(r.is_ok());
        prop_assert_eq!(got, frames);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_flows_pass_the_stage_conformance_suite() {
    let lines = || {
        Flow::<i64, i64, ()>::identity()
            .map(|x: i64| format!("{x}\n").into_bytes())
            .via(framing::delimiter(b"\n", 32, false).expect("valid"))
    };
    weir_engine::testkit::check_flow("delimiter_framing", lines, 0).await;
    let proto = || {
        Flow::<i64, i64, ()>::identity()
            .map(|x: i64| x.to_be_bytes().to_vec())
            .via(
                simple_framing_protocol(8)
                    .expect("valid")
                    .join(Flow::identity()),
            )
    };
    weir_engine::testkit::check_flow("simple_framing_protocol", proto, 0).await;
    let objects = || {
        Flow::<i64, i64, ()>::identity()
            .map(|x: i64| format!("{{\"x\":{x}}}").into_bytes())
            .via(framing::json(64))
    };
    weir_engine::testkit::check_flow("json_framing", objects, 0).await;
}
