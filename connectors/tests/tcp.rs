//! TCP connectors over loopback: every framing in both directions, a server merging several
//! clients, a slow consumer that keeps the bytes read bounded, bad frames under Stop and
//! Resume (dead letters exact), a 4 GiB length prefix, a peer that closes early, and connect
//! retries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use weir_connectors::{Envelope, Framing, Retry, TcpSink, TcpSource, TcpSourceHandle};
use weir_engine::prelude::*;
use weir_engine::testkit::TestSink;
use weir_graph::{DeadLetterSink, Keep, Sink, SinkFuture, Source, StageError, Supervision};
use weir_operators::prelude::*;

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

/// Runs `src` into a collecting sink: the source's handle and the collected elements.
fn start<T: Send + 'static>(
    src: Source<T, TcpSourceHandle>,
) -> (TcpSourceHandle, SinkFuture<Vec<T>>) {
    src.to_mat(Sink::collect(), Keep::both).run().unwrap()
}

/// Writes `bytes` to `addr` from a thread, then closes.
fn send_raw(addr: SocketAddr, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&bytes).unwrap();
    })
}

/// Accepts one connection on a fresh listener and returns everything it reads until EOF.
fn read_all_once() -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut v = Vec::new();
        s.read_to_end(&mut v).unwrap();
        v
    });
    (addr, t)
}

fn framed(framing: Framing, frames: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in frames {
        match framing {
            Framing::Lines => {
                v.extend_from_slice(f);
                v.push(b'\n');
            }
            Framing::LengthPrefixed => {
                v.extend_from_slice(&(f.len() as u32).to_be_bytes());
                v.extend_from_slice(f);
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framing_reads_exact_frames_from_raw_bytes() {
    let frames: [&[u8]; 4] = [b"alpha", b"", b"beta gamma", b"\x00\x01 bin"];
    for framing in [Framing::Lines, Framing::LengthPrefixed] {
        let (h, got) = start(
            TcpSource::bind("127.0.0.1:0")
                .framing(framing)
                .accept(1)
                .bytes(),
        );
        let t = send_raw(h.local_addr.unwrap(), framed(framing, &frames));
        let got = within(got).await.unwrap();
        t.join().unwrap();
        assert_eq!(got, frames.map(<[u8]>::to_vec).to_vec(), "{framing:?}");
        assert_eq!(h.stats.frames_read(), 4);
        assert_eq!(h.stats.connections(), 1);
    }
    // Text lines drop a trailing '\r'; JSON lines decode each line.
    let (h, got) = start(TcpSource::bind("127.0.0.1:0").accept(1).text());
    send_raw(h.local_addr.unwrap(), b"one\r\ntwo\n".to_vec());
    assert_eq!(within(got).await.unwrap(), ["one", "two"]);
    let (h, got) = start(TcpSource::bind("127.0.0.1:0").accept(1).envelopes());
    let wire = concat!(
        r#"{"type":"click","key":"u1","payload":{"x":1},"timestamp":1700000000000}"#,
        "\n",
        r#"{"type":"tick"}"#,
        "\n"
    );
    send_raw(h.local_addr.unwrap(), wire.as_bytes().to_vec());
    assert_eq!(
        within(got).await.unwrap(),
        [
            Envelope::new("click", serde_json::json!({"x": 1}))
                .with_key("u1")
                .with_timestamp(1_700_000_000_000),
            Envelope::new("tick", serde_json::Value::Null)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framing_writes_exact_bytes() {
    for framing in [Framing::Lines, Framing::LengthPrefixed] {
        let (addr, peer) = read_all_once();
        let items = vec![b"alpha".to_vec(), vec![], b"beta".to_vec()];
        let done = Source::from_iter(items)
            .to_mat(
                TcpSink::connect(addr.to_string()).framing(framing).bytes(),
                Keep::right,
            )
            .run()
            .unwrap();
        within(done.done).await.unwrap();
        assert_eq!(
            peer.join().unwrap(),
            framed(framing, &[b"alpha", b"", b"beta"]),
            "{framing:?}"
        );
    }
    let (addr, peer) = read_all_once();
    let envs = vec![
        Envelope::new("a", serde_json::json!([1, "x\ny"])).with_key("k"),
        Envelope::new("b", serde_json::Value::Null).with_timestamp(5),
    ];
    let h = Source::from_iter(envs)
        .to_mat(TcpSink::connect(addr.to_string()).envelopes(), Keep::right)
        .run()
        .unwrap();
    within(h.done).await.unwrap();
    assert_eq!(
        String::from_utf8(peer.join().unwrap()).unwrap(),
        concat!(
            r#"{"type":"a","key":"k","payload":[1,"x\ny"]}"#,
            "\n",
            r#"{"type":"b","payload":null,"timestamp":5}"#,
            "\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weir_sink_feeds_a_weir_source_in_every_framing() {
    for framing in [Framing::Lines, Framing::LengthPrefixed] {
        let (h, got) = start(
            TcpSource::bind("127.0.0.1:0")
                .framing(framing)
                .accept(1)
                .text(),
        );
        let items: Vec<String> = (0..5000).map(|i| format!("element {i}")).collect();
        let sink = TcpSink::connect(h.local_addr.unwrap().to_string())
            .framing(framing)
            .text();
        let sent = Source::from_iter(items.clone())
            .to_mat(sink, Keep::right)
            .run()
            .unwrap();
        within(sent.done).await.unwrap();
        assert_eq!(within(got).await.unwrap(), items, "{framing:?}");
    }
    // Server-mode sink: the first client gets the stream; a client-mode source reads it.
    let sink = TcpSink::bind("127.0.0.1:0").json::<u32>();
    let h = Source::from_iter(0..100u32)
        .to_mat(sink, Keep::right)
        .run()
        .unwrap();
    let addr = h.local_addr.unwrap().to_string();
    let (_, got) = start(TcpSource::connect(addr).json::<u32>());
    assert_eq!(within(got).await.unwrap(), (0..100).collect::<Vec<_>>());
    within(h.done).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_merges_several_clients_keeping_each_ones_order() {
    let src = TcpSource::bind("127.0.0.1:0")
        .max_connections(2)
        .accept(4)
        .text();
    let (h, got) = start(src);
    let addr = h.local_addr.unwrap();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let lines: String = (0..500).map(|i| format!("c{c}-{i}\n")).collect();
            send_raw(addr, lines.into_bytes())
        })
        .collect();
    let got = within(got).await.unwrap();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(got.len(), 2000);
    for c in 0..4 {
        let mine: Vec<&String> = got
            .iter()
            .filter(|l| l.starts_with(&format!("c{c}-")))
            .collect();
        let want: Vec<String> = (0..500).map(|i| format!("c{c}-{i}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "client {c}");
    }
    assert_eq!(h.stats.connections(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_stops_the_reading_so_what_is_read_stays_bounded() {
    let src = TcpSource::bind("127.0.0.1:0")
        .framing(Framing::LengthPrefixed)
        .read_buffer(16 * 1024)
        .accept(1)
        .bytes()
        .buffer_rows(64);
    let (h, mut probe) = src.to_mat(TestSink::probe(), Keep::both).run().unwrap();
    let addr = h.local_addr.unwrap();
    const FRAMES: usize = 200_000;
    const FRAME: usize = 1000;
    let total = (FRAMES * (FRAME + 4)) as u64;
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let frame = framed(Framing::LengthPrefixed, &[&[7u8; FRAME]]);
        let mut written = 0u64;
        for _ in 0..FRAMES {
            if s.write_all(&frame).is_err() {
                break;
            }
            written += frame.len() as u64;
        }
        written
    });
    probe.request(10);
    let first = within(probe.expect_next_n(10)).await;
    assert_eq!(first, vec![vec![7u8; FRAME]; 10]);
    // Give the writer time to fill every buffer it can (generous: the bound is what matters).
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = h.stats.bytes_read();
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let read = h.stats.bytes_read();
    eprintln!("slow consumer: {read} bytes read of {total} offered");
    // The channel (64 rows), one batch in flight and one read buffer: far below the 200 MB sent.
    assert!(
        read < 4 << 20,
        "read {read} bytes of {total} while the consumer took 10 frames"
    );
    assert!(
        !writer.is_finished(),
        "the writer was never blocked by TCP flow control"
    );
    probe.cancel();
    let written = writer.join().unwrap();
    assert!(
        written < total,
        "cancelling closed the connection, so the writer stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_fail_the_stage_naming_peer_and_offset_after_the_good_ones() {
    // Too long: "abcdef" (6 bytes) at byte 3, maximum 5.
    let (h, got) = start(
        TcpSource::bind("127.0.0.1:0")
            .max_frame_length(5)
            .accept(1)
            .text(),
    );
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    let peer = client.local_addr().unwrap();
    (&client).write_all(b"ok\nabcdef\nnext\n").unwrap();
    drop(client);
    let e = within(got).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "stage 'tcp_source#0' failed: bad frame from {peer}: frame starting at byte 3 is 6 bytes long, more than the maximum of 5"
        )
    );
    // Invalid JSON, then truncated at the end: each fails with its own offset.
    let (h, got) = start(TcpSource::bind("127.0.0.1:0").accept(1).json::<u32>());
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    let peer = client.local_addr().unwrap();
    (&client).write_all(b"1\n2\n{oops\n3\n").unwrap();
    drop(client);
    let e = within(got).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "stage 'tcp_source#0' failed on element {{oops: bad frame from {peer} at byte 4: invalid JSON: invalid type: map, expected u32 at line 1 column 0"
        )
    );
    let (h, got) = start(
        TcpSource::bind("127.0.0.1:0")
            .accept(1)
            .framing(Framing::LengthPrefixed)
            .bytes(),
    );
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    let peer = client.local_addr().unwrap();
    (&client).write_all(b"\0\0\0\x02ab\0\0\0\x09cut").unwrap();
    drop(client);
    let e = within(got).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "stage 'tcp_source#0' failed on element \0\0\0\tcut: bad frame from {peer}: stream completed inside a frame starting at byte 6 (7 bytes buffered)"
        )
    );
}

/// What the dead-letter sink saw: (stage, error, element rendering).
fn letters(
    store: &std::sync::Mutex<Vec<weir_graph::DeadLetter>>,
) -> Vec<(String, String, Option<String>)> {
    store
        .lock()
        .unwrap()
        .iter()
        .map(|d| (d.stage.clone(), d.error.to_string(), d.repr.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_bad_frames_go_to_dead_letters_and_reading_goes_on() {
    let (dl, store) = DeadLetterSink::collector();
    let src = TcpSource::bind("127.0.0.1:0")
        .max_frame_length(8)
        .accept(1)
        .json::<u32>()
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    let (h, got) = start(src);
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    let peer = client.local_addr().unwrap();
    // 1, a 12-byte line (too long once 9 bytes are in, skipped to its newline in the next
    // write), 2, bad JSON,
    // 3, and a last line cut by the close.
    (&client).write_all(b"1\n123456789").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    (&client).write_all(b"012\n2\n\"x\"\n3\n45").unwrap();
    drop(client);
    assert_eq!(within(got).await.unwrap(), vec![1, 2, 3]);
    let p = "tcp_source#0";
    assert_eq!(
        letters(&store),
        vec![
            (
                p.to_owned(),
                format!(
                    "stage '{p}' failed: bad frame from {peer}: frame starting at byte 2 is 9 bytes long, more than the maximum of 8"
                ),
                None
            ),
            (
                p.to_owned(),
                format!(
                    "stage '{p}' failed on element \"x\": bad frame from {peer} at byte 17: invalid JSON: invalid type: string \"x\", expected u32 at line 1 column 3"
                ),
                Some("\"x\"".to_owned())
            ),
            (
                p.to_owned(),
                format!(
                    "stage '{p}' failed on element 45: bad frame from {peer}: stream completed inside a frame starting at byte 23 (2 bytes buffered)"
                ),
                Some("45".to_owned())
            ),
        ]
    );
    assert_eq!(h.stats.frames_read(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_gib_length_prefix_is_refused_from_its_header() {
    // Stop: fails at once, naming the frame at byte 6 (after one good frame).
    let src = TcpSource::bind("127.0.0.1:0")
        .framing(Framing::LengthPrefixed)
        .accept(1)
        .bytes();
    let (h, got) = start(src);
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    let peer = client.local_addr().unwrap();
    (&client)
        .write_all(b"\0\0\0\x02ok\xff\xff\xff\xffpayload")
        .unwrap();
    let e = within(got).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "stage 'tcp_source#0' failed: bad frame from {peer}: frame starting at byte 6 is 4294967299 bytes long, more than the maximum of 1048580"
        )
    );
    drop(client);
    // Resume: the frame is dead-lettered and its bytes skipped as they come, never buffered.
    let (dl, store) = DeadLetterSink::collector();
    let src = TcpSource::bind("127.0.0.1:0")
        .framing(Framing::LengthPrefixed)
        .accept(1)
        .bytes()
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    let (h, got) = start(src);
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    let peer = client.local_addr().unwrap();
    (&client)
        .write_all(b"\0\0\0\x02ok\xff\xff\xff\xff")
        .unwrap();
    (&client).write_all(&vec![0u8; 8 << 20]).unwrap();
    drop(client);
    assert_eq!(within(got).await.unwrap(), vec![b"ok".to_vec()]);
    assert_eq!(
        letters(&store),
        vec![(
            "tcp_source#0".to_owned(),
            format!(
                "stage 'tcp_source#0' failed: bad frame from {peer}: frame starting at byte 6 is 4294967299 bytes long, more than the maximum of 1048580"
            ),
            None
        )]
    );
    assert_eq!(h.stats.bytes_read(), 10 + (8 << 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_fails_cleanly_when_its_peer_closes_early() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut first = [0u8; 2];
        s.read_exact(&mut first).unwrap();
        first
    });
    let h = Source::from_iter(0u64..)
        .map(|i| i.to_string())
        .to_mat(TcpSink::connect(addr.to_string()).text(), Keep::right)
        .run()
        .unwrap();
    let e = within(h.done).await.unwrap_err();
    assert_eq!(&peer.join().unwrap(), b"0\n");
    assert_eq!(
        e.to_string(),
        format!("stage 'tcp_sink#2' failed: peer {addr} closed the connection")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elements_that_cannot_be_framed_fail_or_are_dead_lettered() {
    let (addr, peer) = read_all_once();
    let h = Source::from_iter(vec!["a".to_owned(), "b\nc".to_owned(), "d".to_owned()])
        .to_mat(TcpSink::connect(addr.to_string()).text(), Keep::right)
        .run()
        .unwrap();
    let e = within(h.done).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "stage 'tcp_sink#1' failed on element \"b\\nc\": element 1 for {addr} cannot be sent: holds a newline at byte 1, which would end its line"
        )
    );
    // What came before the failing element is written first.
    assert_eq!(peer.join().unwrap(), b"a\n");
    let (dl, store) = DeadLetterSink::collector();
    let (addr, peer) = read_all_once();
    let sink = TcpSink::connect(addr.to_string())
        .text()
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    let h = Source::from_iter(vec!["a".to_owned(), "b\nc".to_owned(), "d".to_owned()])
        .to_mat(sink, Keep::right)
        .run()
        .unwrap();
    within(h.done).await.unwrap();
    assert_eq!(peer.join().unwrap(), b"a\nd\n");
    assert_eq!(
        letters(&store),
        vec![(
            "tcp_sink#1".to_owned(),
            format!(
                "stage 'tcp_sink#1' failed on element \"b\\nc\": element 1 for {addr} cannot be sent: holds a newline at byte 1, which would end its line"
            ),
            Some("\"b\\nc\"".to_owned())
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_retries_with_backoff_then_fails_naming_the_address() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let started = Instant::now();
    let src = TcpSource::connect(addr.to_string())
        .retry(Retry::backoff(
            3,
            Duration::from_millis(20),
            Duration::from_millis(30),
        ))
        .text();
    let (_, got) = start(src);
    let e: StageError = within(got).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        e.to_string(),
        format!(
            "stage 'tcp_source#0' failed: cannot connect to {addr} after 3 attempt(s): Connection refused (os error 111)"
        )
    );
    // A listener that appears during the backoff is reached.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let src = TcpSource::connect(addr.to_string())
        .retry(Retry::backoff(
            50,
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
        .text();
    let (_, got) = start(src);
    std::thread::sleep(Duration::from_millis(100));
    let l = TcpListener::bind(addr).unwrap();
    let (mut s, _) = l.accept().unwrap();
    s.write_all(b"late\n").unwrap();
    drop(s);
    assert_eq!(within(got).await.unwrap(), ["late"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reconnects_a_client_source() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for payload in [&b"1\n{bad\n7\n"[..], b"2\n"] {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(payload).unwrap();
        }
    });
    let (dl, store) = DeadLetterSink::collector();
    let src = TcpSource::connect(addr.to_string())
        .json::<u32>()
        .with_supervision(Supervision::restart().with_dead_letters(dl));
    let (_, got) = start(src);
    // The first connection's frames after the bad one are lost with that connection.
    assert_eq!(within(got).await.unwrap(), vec![1, 2]);
    server.join().unwrap();
    assert_eq!(
        letters(&store),
        vec![(
            "tcp_source#0".to_owned(),
            format!(
                "stage 'tcp_source#0' failed on element {{bad: bad frame from {addr} at byte 2: invalid JSON: invalid type: map, expected u32 at line 1 column 0"
            ),
            Some("{bad".to_owned())
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_stop_the_frames_before_a_bad_one_reach_downstream_first() {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = std::sync::Arc::clone(&got);
    let (h, done) = TcpSource::bind("127.0.0.1:0")
        .accept(1)
        .json::<u32>()
        .to_mat(
            Sink::for_each(move |x| g.lock().unwrap().push(x)),
            Keep::both,
        )
        .run()
        .unwrap();
    let client = TcpStream::connect(h.local_addr.unwrap()).unwrap();
    (&client).write_all(b"1\n2\n3\nx\n4\n").unwrap();
    drop(client);
    let e = within(done).await.unwrap_err();
    assert_eq!(e.element(), Some("x"));
    assert_eq!(*got.lock().unwrap(), vec![1, 2, 3]);
}

#[test]
fn a_tcp_source_runs_on_the_engines_own_runtime() {
    // The engine's runtime enables the I/O driver whenever tokio's networking is compiled in.
    let rt = weir_engine::Runtime::new().expect("runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut c, _) = listener.accept().expect("accepts");
        c.write_all(b"x\ny\n").expect("writes");
    });
    let out = rt.block_on(async {
        weir_connectors::TcpSource::connect(addr)
            .text()
            .run_with(weir_operators::prelude::Sink::collect())
            .expect("materializes")
            .await
    });
    server.join().expect("server");
    assert_eq!(out.expect("runs"), vec!["x".to_owned(), "y".to_owned()]);
}
