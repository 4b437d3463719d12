//! The event-time windows example against a plain model of tumbling sums.

use std::collections::BTreeMap;
use weir_examples::event_time_windows::{events, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_windows_match_a_model_of_tumbling_sums() {
    // Out-of-order input within the bound: nothing is late, every window sums its own events.
    let mut model: BTreeMap<(u32, i64), u64> = BTreeMap::new();
    for (k, v, ts) in events(200_000) {
        *model.entry((k, ts.div_euclid(1000) * 1000)).or_default() += u64::from(v);
    }
    for p in [1, 2] {
        let (windows, late) = run(events(200_000), p).await.unwrap();
        assert_eq!(late, 0);
        let got: BTreeMap<(u32, i64), u64> = windows.iter().map(|&(k, s, v)| ((k, s), v)).collect();
        assert_eq!(got.len(), windows.len(), "each window fires once");
        assert_eq!(got, model, "parallelism {p}");
    }
}

#[test]
fn the_binary_reports_a_correct_checksum() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_event_time_windows"))
        .args(["20000", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("{\"events\":20000,\"parallelism\":2,\"windows\":")
            && line.contains("\"late\":0,\"checksum_ok\":true"),
        "{line}"
    );
}
