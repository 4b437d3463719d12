use super::*;

fn c(rows: u64, bytes: u64) -> Cost {
    Cost::new(rows, bytes)
}

#[test]
fn sender_is_blocked_at_zero_and_a_grant_resumes_it() {
    let mut s = CreditSender::new();
    assert_eq!(s.available(), c(0, 0));
    assert!(!s.try_send(c(1, 1)));
    assert!(s.try_send(c(0, 0)));
    s.grant(c(3, 100));
    assert!(s.try_send(c(2, 60)));
    assert_eq!(s.available(), c(1, 40));
    assert!(!s.try_send(c(2, 10)), "rows bound");
    assert!(!s.try_send(c(1, 41)), "bytes bound");
    assert_eq!(s.available(), c(1, 40), "a refused send takes nothing");
    assert!(s.try_send(c(1, 40)));
    assert_eq!(s.available(), c(0, 0));
    assert!(!s.can_send(c(1, 0)));
    assert!(!s.can_send(c(0, 1)));
}

#[test]
fn receiver_grants_its_window_once_then_as_it_drains() {
    let mut r = CreditReceiver::new(c(10, 1000)).unwrap();
    let mut s = CreditSender::new();
    s.grant(r.initial_grant());
    assert_eq!(s.available(), c(10, 1000));
    // Nothing more to grant until something drains.
    assert_eq!(r.initial_grant(), c(0, 0));
    for _ in 0..4 {
        assert!(s.try_send(c(2, 100)));
        r.on_frame(c(2, 100)).unwrap();
    }
    assert_eq!(r.buffered(), c(8, 400));
    assert_eq!(s.available(), c(2, 600));
    // 2 of 10 rows free and the buffer not empty: no grant yet.
    assert_eq!(r.on_drained(c(2, 100)).unwrap(), None);
    // 4 of 10 rows: still under half.
    assert_eq!(r.on_drained(c(2, 100)).unwrap(), None);
    // 6 of 10 rows: half the window is free, grant it all.
    let g = r.on_drained(c(2, 100)).unwrap();
    assert_eq!(g, Some(c(6, 300)));
    s.grant(c(6, 300));
    assert_eq!(s.available(), c(8, 900));
    // Draining the rest empties the buffer: the last rows are granted at once.
    assert_eq!(r.on_drained(c(2, 100)).unwrap(), Some(c(2, 100)));
    assert_eq!(r.buffered(), c(0, 0));
}

#[test]
fn bytes_bound_a_grant_as_well_as_rows() {
    let mut r = CreditReceiver::new(c(1000, 100)).unwrap();
    let mut s = CreditSender::new();
    s.grant(r.initial_grant());
    assert!(s.try_send(c(1, 60)));
    r.on_frame(c(1, 60)).unwrap();
    assert!(!s.try_send(c(1, 41)), "40 bytes left");
    assert!(s.try_send(c(1, 40)));
    r.on_frame(c(1, 40)).unwrap();
    assert!(!s.try_send(c(1, 1)));
    // 60 of 100 bytes drained: half the bytes, so a grant though only 1 row of 1000.
    assert_eq!(r.on_drained(c(1, 60)).unwrap(), Some(c(1, 60)));
}

#[test]
fn an_overrun_and_an_over_drain_are_errors() {
    let mut r = CreditReceiver::new(c(4, 40)).unwrap();
    assert!(matches!(
        r.on_frame(c(1, 1)),
        Err(CreditError::Overrun {
            credit_rows: 0,
            credit_bytes: 0,
            ..
        })
    ));
    r.initial_grant();
    assert_eq!(
        r.on_frame(c(5, 1)),
        Err(CreditError::Overrun {
            rows: 5,
            bytes: 1,
            credit_rows: 4,
            credit_bytes: 40
        })
    );
    r.on_frame(c(4, 40)).unwrap();
    assert_eq!(r.on_drained(c(5, 0)), Err(CreditError::OverDrained));
    assert_eq!(r.on_frame(c(0, 1)).map_err(|_| ()), Err(()));
}

#[test]
fn a_zero_window_and_frames_larger_than_the_window_are_refused() {
    assert_eq!(
        CreditReceiver::new(c(0, 10)).err(),
        Some(CreditError::EmptyWindow)
    );
    assert_eq!(
        CreditReceiver::new(c(10, 0)).err(),
        Some(CreditError::EmptyWindow)
    );
    let r = CreditReceiver::new(c(10, 100)).unwrap();
    assert!(r.check_fits(c(10, 100)).is_ok());
    assert!(matches!(
        r.check_fits(c(11, 1)),
        Err(CreditError::LargerThanWindow { .. })
    ));
    assert!(matches!(
        r.check_fits(c(1, 101)),
        Err(CreditError::LargerThanWindow { .. })
    ));
}

/// Every interleaving of sends and drains over a small window: the sender never holds more
/// than the window minus what is in flight and buffered, and never deadlocks.
#[test]
fn exhaustive_small_windows_keep_the_invariant_and_make_progress() {
    for wr in 1..=4u64 {
        for wb in 1..=4u64 {
            // Each schedule bit: 1 = try to send a (1 row, 1 byte) frame, 0 = drain one frame.
            for schedule in 0u32..(1 << 10) {
                let mut r = CreditReceiver::new(c(wr, wb)).unwrap();
                let mut s = CreditSender::new();
                s.grant(r.initial_grant());
                let mut queue = 0u64;
                for step in 0..10 {
                    if schedule >> step & 1 == 1 {
                        if s.try_send(c(1, 1)) {
                            r.on_frame(c(1, 1)).unwrap();
                            queue += 1;
                        }
                    } else if queue > 0 {
                        queue -= 1;
                        if let Some(g) = r.on_drained(c(1, 1)).unwrap() {
                            s.grant(g);
                        }
                    }
                    let a = s.available();
                    assert!(a.rows + queue <= wr && a.bytes + queue <= wb);
                }
                // Drain everything: the sender gets its whole window back.
                while queue > 0 {
                    queue -= 1;
                    if let Some(g) = r.on_drained(c(1, 1)).unwrap() {
                        s.grant(g);
                    }
                }
                assert_eq!(
                    s.available(),
                    c(wr, wb),
                    "window {wr}/{wb} schedule {schedule:b}"
                );
            }
        }
    }
}
