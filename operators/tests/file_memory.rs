//! The line source streams: reading a file many times larger than its bound keeps the peak RSS
//! of the process within a few blocks of where it started (its own test binary, so no other
//! test's memory is counted).

use std::io::Write;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::Sink;
use weir_operators::file::{FileSource, Files};
use weir_operators::prelude::*;

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_is_read_in_bounded_memory() {
    const MIB: u64 = 1024 * 1024;
    let dir = std::env::temp_dir().join(format!("weir-file-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.csv");
    // 64 MiB of `key,value,ts_ms` lines, written a chunk at a time.
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (mut lines, mut bytes) = (0u64, 0u64);
    while bytes < 64 * MIB {
        let l = format!("{},{},{}\n", lines % 1000, lines % 100 + 1, lines / 10);
        f.write_all(l.as_bytes()).unwrap();
        bytes += l.len() as u64;
        lines += 1;
    }
    f.flush().unwrap();
    drop(f);

    // Reset the peak to the current RSS (Linux: clear_refs 5), so the peak is the run's own.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:").expect("Linux /proc");
    let counted = FileSource::new(Files::path(&path))
        .lines()
        .run_with(Sink::fold((0u64, 0u64), |(n, b), l: bytes::Bytes| {
            (n + 1, b + l.len() as u64 + 1)
        }))
        .unwrap();
    let counted = tokio::time::timeout(Duration::from_secs(300), counted)
        .await
        .unwrap()
        .unwrap();
    let peak = status_kib("VmHWM:").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(counted, (lines, bytes));
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "file source over a 64 MiB file: RSS {before} KiB before, peak {peak} KiB (reset: {reset})"
    );
    if reset {
        assert!(
            grew_mib < 24,
            "peak RSS grew by {grew_mib} MiB reading 64 MiB"
        );
    } else {
        assert!(peak / 1024 < 64, "peak RSS {peak} KiB reading 64 MiB");
    }
}
