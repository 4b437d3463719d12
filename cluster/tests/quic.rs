//! Remote edges over QUIC on loopback with real mutual TLS, certificate files, and strangers
//! (S22-S26): a client without a certificate, one from another CA, an expired one, one
//! speaking another ALPN, raw UDP garbage, malformed first frames, a 4 GiB frame claim, a
//! replayed frame, a pickle payload and a stream flood are each refused (or bounded) and
//! counted while good peers are served.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::edge::{EdgeConfig, remote_source};
use weir_cluster::frame::{Body, FrameWriter};
use weir_cluster::tls::{
    ClusterCa, NodeIdentity, Validity, client_config, make_ca, make_node_cert,
    make_node_cert_valid, write_cluster_certs,
};
use weir_cluster::transport::{QuicConfig, QuicTransport, Transport};
use weir_engine::prelude::*;
use weir_engine::testkit::TestSink;
use weir_graph::Keep;

const LOOPBACK: &str = "127.0.0.1:0";

struct Cluster {
    ca: ClusterCa,
    a: Arc<QuicTransport>,
    b: Arc<QuicTransport>,
}

fn node(ca: &ClusterCa, name: &str) -> Arc<QuicTransport> {
    let cert = make_node_cert(ca, name, &["localhost"]).unwrap();
    let id = NodeIdentity::from_parts(ca, &cert);
    QuicTransport::bind(QuicConfig::new(id, LOOPBACK.parse().unwrap())).unwrap()
}

fn cluster() -> Cluster {
    let ca = make_ca("test cluster").unwrap();
    let a = node(&ca, "a");
    let b = node(&ca, "b");
    a.add_peer("b", b.local_addr().unwrap());
    b.add_peer("a", a.local_addr().unwrap());
    Cluster { ca, a, b }
}

fn dyns(c: &Cluster) -> (Arc<dyn Transport>, Arc<dyn Transport>) {
    (c.a.clone(), c.b.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_cross_quic_exactly_with_mutual_tls() {
    let c = cluster();
    let (a, b) = dyns(&c);
    exact_output(a.clone(), b.clone(), 1, EdgeConfig::default()).await;
    // A second edge reuses the connection.
    exact_output(
        a,
        b,
        2,
        EdgeConfig {
            window_rows: 50,
            window_bytes: 4096,
        },
    )
    .await;
    assert_eq!(c.b.stats().connections(), 1);
    assert_eq!(c.b.stats().streams(), 2);
    assert_eq!(c.b.stats().handshakes_refused(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_and_cancellation_cross_quic() {
    let c = cluster();
    let (a, b) = dyns(&c);
    upstream_failure(a.clone(), b.clone(), 3).await;
    downstream_cancel(a, b, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_bounds_rows_in_flight_over_quic() {
    let c = cluster();
    let (a, b) = dyns(&c);
    slow_consumer(a, b, 5).await;
}

#[test]
fn certificate_files_have_private_keys_0600_and_load() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("weir-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let written = write_cluster_certs(&dir, &["n1", "n2"]).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["ca.pem", "ca.key", "n1.pem", "n1.key", "n2.pem", "n2.key"]
    );
    for p in &written {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let want = if p.extension().unwrap() == "key" {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode, want, "{}", p.display());
    }
    let id = NodeIdentity::load(&dir, "n1").unwrap();
    assert_eq!(
        (id.name.as_str(), id.chain.len(), id.ca.len()),
        ("n1", 1, 1)
    );
    id.server_config().unwrap();
    id.client_config().unwrap();
    // A key others can read is refused.
    let key = dir.join("n2.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = NodeIdentity::load(&dir, "n2").unwrap_err().to_string();
    assert!(
        err.contains("private key has mode 644, expected 600"),
        "{err}"
    );
    assert!(write_cluster_certs(&dir, &["../x"]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
    // A node's name is the DNS name an accepting node reads from its certificate.
    let ca = make_ca("names").unwrap();
    for bad in ["1", "-a", "a-", "a..b", "a.", "a b"] {
        assert!(make_node_cert(&ca, bad, &[]).is_err(), "{bad} was accepted");
    }
    for good in ["n1", "node-1", "node_1", "a.b-c"] {
        make_node_cert(&ca, good, &[]).unwrap();
    }
}

/// A raw QUIC client with the given TLS configuration (not a cluster node).
fn raw_client(cfg: rustls::ClientConfig) -> quinn::Endpoint {
    let mut ep = quinn::Endpoint::client(LOOPBACK.parse().unwrap()).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(cfg).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    ep
}

/// Waits until `f` holds (30 s at most).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let wait = async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}");
    }
}

/// Connects as a stranger; returns whether a usable connection came out (it must not).
async fn stranger_connects(cfg: rustls::ClientConfig, to: SocketAddr) -> bool {
    let ep = raw_client(cfg);
    let Ok(connecting) = ep.connect(to, "b") else {
        return false;
    };
    match within(connecting).await {
        Err(_) => false,
        // TLS 1.3 lets a client finish before the server checked its certificate: the server's
        // refusal then closes the connection, and opening an edge fails.
        Ok(conn) => {
            let opened = async {
                let (mut s, mut r) = conn.open_bi().await.ok()?;
                let mut w = FrameWriter::new(1, 0, 1024);
                let mut buf = Vec::new();
                w.write(Body::Open, &mut buf).ok()?;
                s.write_all(&buf).await.ok()?;
                let mut b = [0u8; 1];
                r.read(&mut b).await.ok()?.map(|_| ())
            };
            within(opened).await.is_some()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_good_peers_keep_being_served() {
    let c = cluster();
    let b_addr = c.b.local_addr().unwrap();
    let stats = c.b.stats();
    let ca = [c.ca.cert_der().clone()];

    // (a) No client certificate.
    assert!(!stranger_connects(client_config(None, &ca).unwrap(), b_addr).await);
    eventually("refusal (a)", || stats.handshakes_refused() == 1).await;

    // (b) A certificate from another CA (the stranger trusts the cluster CA for the server).
    let other = make_ca("other cluster").unwrap();
    let mallory = make_node_cert(&other, "a", &[]).unwrap();
    let cfg = client_config(Some(mallory.rustls_identity()), &ca).unwrap();
    assert!(!stranger_connects(cfg, b_addr).await);
    eventually("refusal (b)", || stats.handshakes_refused() == 2).await;

    // (c) A cluster certificate but another application protocol than weir/1.
    let peer = make_node_cert(&c.ca, "a", &[]).unwrap();
    let mut cfg = client_config(Some(peer.rustls_identity()), &ca).unwrap();
    cfg.alpn_protocols = vec![b"h3".to_vec()];
    assert!(!stranger_connects(cfg, b_addr).await);
    eventually("refusal (c)", || stats.handshakes_refused() == 3).await;

    // (d) A certificate of the cluster CA that expired.
    let expired = make_node_cert_valid(
        &c.ca,
        "a",
        &[],
        Some(Validity {
            not_before: (2020, 1, 1),
            not_after: (2021, 1, 1),
        }),
    )
    .unwrap();
    let cfg = client_config(Some(expired.rustls_identity()), &ca).unwrap();
    assert!(!stranger_connects(cfg, b_addr).await);
    eventually("refusal (d)", || stats.handshakes_refused() == 4).await;

    // (e) Raw UDP garbage: dropped by QUIC before any handshake state exists.
    let udp = std::net::UdpSocket::bind(LOOPBACK).unwrap();
    for i in 0..50u8 {
        let garbage: Vec<u8> = (0..1200).map(|j| (j as u8).wrapping_mul(31) ^ i).collect();
        udp.send_to(&garbage, b_addr).unwrap();
    }
    udp.send_to(b"GET / HTTP/1.1\r\n\r\n", b_addr).unwrap();

    // Nothing was accepted from any of them: no connection, no stream, no frame buffered.
    assert_eq!(
        (
            stats.connections(),
            stats.streams(),
            stats.frames_refused(),
            stats.peak_decoder_bytes()
        ),
        (0, 0, 0, 0)
    );
    // A good peer is still served.
    let (a, b) = dyns(&c);
    exact_output(a, b, 7, EdgeConfig::default()).await;
    assert_eq!(stats.connections(), 1);
    assert_eq!(stats.handshakes_refused(), 4);
}

#[test]
fn a_validity_that_is_not_a_calendar_day_is_an_error() {
    let ca = make_ca("dates").unwrap();
    let bad = |not_before, not_after| {
        make_node_cert_valid(
            &ca,
            "a",
            &[],
            Some(Validity {
                not_before,
                not_after,
            }),
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        bad((2023, 2, 29), (2030, 1, 1)),
        "invalid certificate validity: 2023-02-29 is not a day"
    );
    assert_eq!(
        bad((2024, 1, 1), (2030, 13, 1)),
        "invalid certificate validity: 2030-13-01 is not a day"
    );
    assert_eq!(
        bad((2024, 1, 2), (2024, 1, 1)),
        "invalid certificate validity: not_after (2024, 1, 1) is before not_before (2024, 1, 2)"
    );
    make_node_cert_valid(
        &ca,
        "a",
        &[],
        Some(Validity {
            not_before: (2024, 2, 29),
            not_after: (2024, 2, 29),
        }),
    )
    .unwrap();
}

/// An authenticated client of the cluster CA (as node "a" would be) outside the stages.
async fn authenticated(c: &Cluster) -> quinn::Connection {
    let cert = make_node_cert(&c.ca, "a", &[]).unwrap();
    let cfg = client_config(Some(cert.rustls_identity()), &[c.ca.cert_der().clone()]).unwrap();
    let ep = raw_client(cfg);
    within(ep.connect(c.b.local_addr().unwrap(), "b").unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_frame_claim_closes_the_connection_before_allocating() {
    let c = cluster();
    let conn = authenticated(&c).await;
    let (mut s, _r) = conn.open_bi().await.unwrap();
    let mut claim = vec![1u8, 2, 0, 0];
    claim.extend_from_slice(&9u64.to_le_bytes());
    claim.extend_from_slice(&0u64.to_le_bytes());
    claim.extend_from_slice(&0u64.to_le_bytes());
    claim.extend_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&claim).await.unwrap();
    let reason = within(conn.closed()).await;
    match reason {
        quinn::ConnectionError::ApplicationClosed(a) => {
            assert_eq!(a.error_code, quinn::VarInt::from_u32(1));
        }
        other => panic!("unexpected close: {other}"),
    }
    let stats = c.b.stats();
    assert_eq!(
        (
            stats.streams_refused(),
            stats.frames_refused(),
            stats.streams()
        ),
        (1, 1, 0)
    );
    // The claim was refused on its header: the decoder held no more than the header.
    assert!(
        stats.peak_decoder_bytes() <= 64,
        "{}",
        stats.peak_decoder_bytes()
    );
    // The node still serves good peers.
    let (a, b) = dyns(&c);
    exact_output(a, b, 8, EdgeConfig::default()).await;
}

/// A frame header: `version kind flags edge epoch seq len`.
fn header(version: u8, kind: u8, seq: u64, len: u32) -> Vec<u8> {
    let mut h = vec![version, kind, 0, 0];
    h.extend_from_slice(&21u64.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    h.extend_from_slice(&seq.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_first_frames_from_an_authenticated_peer_close_its_connection_only() {
    let c = cluster();
    let stats = c.b.stats();
    let mut lying = header(1, 2, 0, 100);
    lying.extend_from_slice(&[0u8; 10]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown version", header(9, 1, 0, 0)),
        ("unknown kind", header(1, 77, 0, 0)),
        ("not an open frame", {
            let mut w = header(1, 3, 0, 8);
            w.extend_from_slice(&5i64.to_le_bytes());
            w
        }),
        ("truncated header", header(1, 1, 0, 0)[..20].to_vec()),
        ("a length past the end", lying),
        ("a sequence gap", header(1, 1, 3, 0)),
        ("a malformed open", {
            let mut w = header(1, 1, 0, 1);
            w.push(0);
            w
        }),
    ];
    let n = cases.len() as u64;
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        let conn = authenticated(&c).await;
        let (mut s, _r) = conn.open_bi().await.unwrap();
        s.write_all(&bytes).await.unwrap();
        s.finish().unwrap();
        match within(conn.closed()).await {
            quinn::ConnectionError::ApplicationClosed(a) => {
                assert_eq!(a.error_code, quinn::VarInt::from_u32(1), "{what}");
            }
            other => panic!("{what}: unexpected close: {other}"),
        }
        let i = i as u64 + 1;
        eventually(what, || stats.streams_refused() == i).await;
    }
    // A first frame that is not an open frame decodes, then fails the handshake: every other
    // case is refused by the decoder.
    assert_eq!(
        (
            stats.streams_refused(),
            stats.frames_refused(),
            stats.streams()
        ),
        (n, n - 1, 0)
    );
    assert!(
        stats.peak_decoder_bytes() <= 256,
        "{}",
        stats.peak_decoder_bytes()
    );
    assert_eq!(stats.connections(), n);
    let (a, b) = dyns(&c);
    exact_output(a, b, 22, EdgeConfig::default()).await;
    assert_eq!(stats.streams(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_frame_fails_the_edge_and_not_the_node() {
    let c = cluster();
    let (_, b) = dyns(&c);
    let mut probe = remote_source::<u64>(b, 9)
        .to_mat(TestSink::probe(), Keep::right)
        .run()
        .unwrap();
    probe.request(10);
    let conn = authenticated(&c).await;
    let (mut s, _r) = conn.open_bi().await.unwrap();
    let mut w = FrameWriter::new(9, 0, 1024);
    let mut buf = Vec::new();
    w.write(Body::Open, &mut buf).unwrap();
    let before = buf.len();
    w.write(Body::Watermark(5), &mut buf).unwrap();
    let replay = buf[before..].to_vec();
    buf.extend_from_slice(&replay);
    s.write_all(&buf).await.unwrap();
    let err = within(probe.expect_error()).await;
    assert!(
        err.contains("replayed frame on edge 9: sequence 1, expected 2")
            && err.contains("remote_source"),
        "{err}"
    );
    let stats = c.b.stats();
    // The stream is counted after it was handed to the source, which may fail first.
    eventually("the stream counted", || stats.streams() == 1).await;
    assert_eq!((stats.frames_refused(), stats.streams_refused()), (1, 0));
    // The node still serves good peers.
    let (a, b) = dyns(&c);
    exact_output(a, b, 10, EdgeConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pickle_payload_is_refused_as_an_undecodable_batch_and_never_run() {
    let c = cluster();
    let marker = std::env::temp_dir().join(format!("weir-pickle-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let (_, b) = dyns(&c);
    let mut probe = remote_source::<u64>(b, 11)
        .to_mat(TestSink::probe(), Keep::right)
        .run()
        .unwrap();
    probe.request(10);
    // A protocol-0 pickle whose __reduce__ would run `touch <marker>`.
    let pickle = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display()).into_bytes();
    let conn = authenticated(&c).await;
    let (mut s, _r) = conn.open_bi().await.unwrap();
    let mut w = FrameWriter::new(11, 0, 1 << 20);
    let mut buf = Vec::new();
    w.write(Body::Open, &mut buf).unwrap();
    w.write(
        Body::Data {
            rows: 1,
            payload: pickle,
        },
        &mut buf,
    )
    .unwrap();
    s.write_all(&buf).await.unwrap();
    let err = within(probe.expect_error()).await;
    assert!(err.contains("edge 11") && err.contains("frame 1"), "{err}");
    assert!(!marker.exists(), "the payload was never executed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_while_the_first_is_served() {
    let ca = make_ca("limits").unwrap();
    let cert = make_node_cert(&ca, "b", &[]).unwrap();
    let mut cfg = QuicConfig::new(
        NodeIdentity::from_parts(&ca, &cert),
        LOOPBACK.parse().unwrap(),
    );
    cfg.max_connections = 1;
    let b = QuicTransport::bind(cfg).unwrap();
    let c = Cluster {
        a: node(&ca, "a"),
        b,
        ca,
    };
    let first = authenticated(&c).await;
    eventually("first connection", || c.b.stats().connections() == 1).await;
    let cert = make_node_cert(&c.ca, "a", &[]).unwrap();
    let cfg = client_config(Some(cert.rustls_identity()), &[c.ca.cert_der().clone()]).unwrap();
    let ep = raw_client(cfg);
    let second = within(ep.connect(c.b.local_addr().unwrap(), "b").unwrap()).await;
    assert!(second.is_err(), "a second connection was accepted");
    assert_eq!(c.b.stats().handshakes_refused(), 1);
    assert_eq!(c.b.stats().connections(), 1);
    // The first connection still opens edges.
    let (mut s, _r) = first.open_bi().await.unwrap();
    let mut w = FrameWriter::new(13, 0, 1024);
    let mut buf = Vec::new();
    w.write(Body::Open, &mut buf).unwrap();
    s.write_all(&buf).await.unwrap();
    eventually("edge stream", || c.b.stats().streams() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_is_held_at_the_stream_limit_and_other_peers_are_served() {
    use futures::FutureExt;
    const LIMIT: u32 = 8;
    let ca = make_ca("flood").unwrap();
    let cert = make_node_cert(&ca, "b", &[]).unwrap();
    let mut cfg = QuicConfig::new(
        NodeIdentity::from_parts(&ca, &cert),
        LOOPBACK.parse().unwrap(),
    );
    cfg.max_streams = LIMIT;
    let b = QuicTransport::bind(cfg).unwrap();
    let a = node(&ca, "a");
    a.add_peer("b", b.local_addr().unwrap());
    let c = Cluster { ca, a, b };
    let stats = c.b.stats();
    // The flooder opens streams for edges nobody accepts and keeps them open.
    let flooder = authenticated(&c).await;
    let mut held = Vec::new();
    for i in 0..LIMIT {
        let (mut s, r) = flooder.open_bi().await.unwrap();
        let mut w = FrameWriter::new(100 + u64::from(i), 0, 1024);
        let mut buf = Vec::new();
        w.write(Body::Open, &mut buf).unwrap();
        s.write_all(&buf).await.unwrap();
        held.push((s, r));
    }
    eventually("the flood's streams", || {
        stats.streams() == u64::from(LIMIT)
    })
    .await;
    // QUIC's stream credit is spent: one more stream cannot even be opened, and unidirectional
    // streams are not allowed at all.
    assert!(flooder.open_bi().now_or_never().is_none());
    assert!(flooder.open_uni().now_or_never().is_none());
    // Another peer has its own credit and is served in full meanwhile.
    let (a, b) = dyns(&c);
    exact_output(a, b, 30, EdgeConfig::default()).await;
    assert_eq!(
        (
            stats.connections(),
            stats.streams(),
            stats.streams_refused()
        ),
        (2, u64::from(LIMIT) + 1, 0)
    );
    // Still held: the flood got no further while the other peer ran.
    assert!(flooder.open_bi().now_or_never().is_none());
    drop(held);
}
