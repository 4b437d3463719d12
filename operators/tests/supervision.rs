//! Supervision never loses accepted elements: under Resume and Restart every element of a batch
//! is emitted or dead-lettered (the failing one), for panics and returned errors alike, whatever
//! the batch size and wherever the boundaries fall; under Stop what came before the failing
//! element is delivered and the error names the element.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{DeadLetter, DeadLetterSink, Supervision, register_copy, register_debug};
use weir_operators::async_ops::map_async;
use weir_operators::prelude::*;
use weir_operators::simple;

const SIZES: [usize; 3] = [1, 3, 1024];

async fn run<T: Send + 'static>(src: Source<T>, bs: usize) -> Result<Vec<T>, StageError> {
    let m = Materializer::new().with_batch_size(bs);
    let fut = src
        .run_with_on(Sink::collect(), &m)
        .map_err(|e| StageError::internal(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(r) => r,
        Err(_) => Err(StageError::timeout("test run timed out")),
    }
}

/// Runs `src` with an `inspect` after it: what passed the inspect, and how the run ended.
async fn run_seen(src: Source<i32>, bs: usize) -> (Vec<i32>, Result<Vec<i32>, StageError>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let src = src.inspect(move |x| {
        if let Ok(mut v) = s2.lock() {
            v.push(*x);
        }
    });
    let r = run(src, bs).await;
    let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
    (seen, r)
}

fn letters() -> (DeadLetterSink, Arc<Mutex<Vec<DeadLetter>>>) {
    DeadLetterSink::collector()
}

/// (stage, repr, message) of every dead letter.
fn summary(store: &Arc<Mutex<Vec<DeadLetter>>>) -> Vec<(String, Option<String>, String)> {
    store
        .lock()
        .map(|v| {
            v.iter()
                .map(|d| {
                    (
                        d.stage.clone(),
                        d.repr.clone(),
                        d.error.message().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn boom_at_2(x: i32) -> i32 {
    if x == 2 {
        panic!("boom")
    }
    x
}

fn directives() -> [(&'static str, Supervision); 2] {
    [
        ("resume", Supervision::resume()),
        ("restart", Supervision::restart()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_panic_mid_batch_keeps_the_rest() {
    for (name, sup) in directives() {
        for bs in SIZES {
            for boundary in [false, true] {
                let (dl, store) = letters();
                let mut src = Source::from_iter(0..10);
                if boundary {
                    src = src.async_boundary();
                }
                let src = src.via(
                    simple::map(boom_at_2).with_supervision(sup.clone().with_dead_letters(dl)),
                );
                let got = run(src, bs).await;
                assert_eq!(
                    got.ok(),
                    Some(vec![0, 1, 3, 4, 5, 6, 7, 8, 9]),
                    "{name}, batch size {bs}, boundary {boundary}"
                );
                // `map` consumed the element; a copy type is recovered from the batch's copy.
                assert_eq!(
                    summary(&store),
                    vec![(
                        "map#1".to_owned(),
                        Some("2".to_owned()),
                        "panicked: boom".to_owned()
                    )],
                    "{name}, batch size {bs}"
                );
                let element = store.lock().ok().and_then(|mut v| v.pop()?.element);
                let element = element.and_then(|e| e.downcast::<i32>().ok()).map(|b| *b);
                assert_eq!(element, Some(2), "{name}, batch size {bs}");
            }
        }
    }
}

/// An element type that does not render (no `register_debug`).
#[derive(Clone, Copy, PartialEq, Debug)]
struct Opaque(i32);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_value_panics_name_the_element_when_it_renders_else_its_position() {
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(0..5)
                .filter_map(|x| (boom_at_2(x) % 2 == 0).then_some(x * 10))
                .with_supervision(sup.clone().with_dead_letters(dl.clone()))
                .flat_map(|x: i32| {
                    boom_at_2(x / 20);
                    vec![x; 2]
                })
                .with_supervision(sup.clone().with_dead_letters(dl.clone()));
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![0, 0]),
                "{name}, batch size {bs}"
            );
            assert_eq!(
                summary(&store),
                vec![
                    (
                        "filter_map#1".to_owned(),
                        Some("2".to_owned()),
                        "panicked: boom".to_owned()
                    ),
                    (
                        "flat_map#2".to_owned(),
                        Some("40".to_owned()),
                        "panicked: boom".to_owned()
                    ),
                ],
                "{name}, batch size {bs}"
            );
            let (dl, store) = letters();
            let src = Source::from_iter((0..5).map(Opaque)).via(
                simple::map(|o: Opaque| Opaque(boom_at_2(o.0)))
                    .with_supervision(sup.clone().with_dead_letters(dl)),
            );
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![Opaque(0), Opaque(1), Opaque(3), Opaque(4)]),
                "{name}, batch size {bs}"
            );
            assert_eq!(
                summary(&store),
                vec![(
                    "map#1".to_owned(),
                    None,
                    "panicked on element 2 of its input: boom".to_owned()
                )],
                "{name}, batch size {bs}"
            );
        }
    }
    // A copy type of the user's own, registered once: its elements are named and dead-lettered.
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct Celsius(i32);
    register_copy::<Celsius>();
    for bs in SIZES {
        let (dl, store) = letters();
        let src = Source::from_iter((0..5).map(Celsius)).via(
            simple::map(|c: Celsius| Celsius(boom_at_2(c.0)))
                .with_supervision(Supervision::resume().with_dead_letters(dl)),
        );
        assert_eq!(
            run(src, bs).await.ok(),
            Some(vec![Celsius(0), Celsius(1), Celsius(3), Celsius(4)]),
            "batch size {bs}"
        );
        assert_eq!(
            summary(&store),
            vec![(
                "map#1".to_owned(),
                Some("Celsius(2)".to_owned()),
                "panicked: boom".to_owned()
            )],
            "batch size {bs}"
        );
        let element = store.lock().ok().and_then(|mut v| v.pop()?.element);
        let element = element
            .and_then(|e| e.downcast::<Celsius>().ok())
            .map(|b| *b);
        assert_eq!(element, Some(Celsius(2)), "batch size {bs}");
    }
    // An explicit Stop policy renders too: the error names the element.
    for bs in SIZES {
        let src = Source::from_iter(0..10)
            .via(simple::map(boom_at_2).with_supervision(Supervision::stop()));
        let err = run(src, bs).await.err();
        assert_eq!(
            err.map(|e| (e.element().map(str::to_owned), e.to_string())),
            Some((
                Some("2".to_owned()),
                "stage 'map#1' failed on element 2: panicked: boom".to_owned()
            )),
            "batch size {bs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_error_mid_batch_keeps_the_rest_and_dead_letters_the_element() {
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(["0", "1", "x", "3", "4"]).via(
                simple::try_map(|s: &&str| s.parse::<i32>())
                    .with_supervision(sup.clone().with_dead_letters(dl)),
            );
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![0, 1, 3, 4]),
                "{name}, batch size {bs}"
            );
            assert_eq!(
                summary(&store),
                vec![(
                    "try_map#1".to_owned(),
                    Some("\"x\"".to_owned()),
                    "invalid digit found in string".to_owned()
                )]
            );
            let element = store.lock().ok().and_then(|mut v| v.pop()?.element);
            let element = element.and_then(|e| e.downcast::<&str>().ok());
            assert_eq!(element.map(|b| *b), Some("x"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_starts_scan_over_from_its_seed_and_resume_keeps_it() {
    let f = |a: &i32, x: i32| {
        assert!(x != 3, "three");
        a + x
    };
    for bs in SIZES {
        let src = Source::from_iter(1..=6)
            .via(simple::scan(0, f).with_supervision(Supervision::restart()));
        // A restarted scan emits its seed again, as Akka's does.
        assert_eq!(run(src, bs).await.ok(), Some(vec![0, 1, 3, 0, 4, 9, 15]));
        let src = Source::from_iter(1..=6)
            .via(simple::scan(0, f).with_supervision(Supervision::resume()));
        assert_eq!(run(src, bs).await.ok(), Some(vec![0, 1, 3, 7, 12, 18]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fold_resumes_with_the_accumulator_before_the_panic() {
    for bs in SIZES {
        let src = Source::from_iter(0..10).via(
            simple::fold(0, |a: i32, x: i32| a + boom_at_2(x))
                .with_supervision(Supervision::resume()),
        );
        assert_eq!(run(src, bs).await.ok(), Some(vec![43]));
        let src = Source::from_iter(0..10).via(
            simple::fold(0, |a: i32, x: i32| a + boom_at_2(x))
                .with_supervision(Supervision::restart()),
        );
        assert_eq!(run(src, bs).await.ok(), Some(vec![42]), "restart: 3..10");
        // A panic on the very last element.
        for (sup, want) in [(Supervision::resume(), 1), (Supervision::restart(), 0)] {
            let src = Source::from_iter(0..3)
                .via(simple::fold(0, |a: i32, x: i32| a + boom_at_2(x)).with_supervision(sup));
            assert_eq!(run(src, bs).await.ok(), Some(vec![want]));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicate_panics_dead_letter_the_element_itself() {
    let pred = |x: &i32| {
        assert!(*x != 2, "two");
        x % 3 != 0
    };
    for (name, sup) in directives() {
        for bs in SIZES {
            let cases: Vec<(Source<i32>, Vec<i32>, &str)> = vec![
                (
                    Source::from_iter(0..8).filter(pred),
                    vec![1, 4, 5, 7],
                    "filter#1",
                ),
                (
                    Source::from_iter(0..8).take_while(move |x| pred(x) || *x == 0),
                    vec![0, 1],
                    "take_while#1",
                ),
                (
                    Source::from_iter(0..8).drop_while(move |x| !pred(x) || *x < 4),
                    vec![4, 5, 6, 7],
                    "drop_while#1",
                ),
                (
                    Source::from_iter(0..5).inspect(move |x| {
                        pred(x);
                    }),
                    vec![0, 1, 3, 4],
                    "inspect#1",
                ),
                (
                    Source::from_iter(0..5).try_map(move |x| {
                        pred(x);
                        Ok::<_, StageError>(*x * 10)
                    }),
                    vec![0, 10, 30, 40],
                    "try_map#1",
                ),
            ];
            for (src, want, stage) in cases {
                let (dl, store) = letters();
                let src = src.with_supervision(sup.clone().with_dead_letters(dl));
                assert_eq!(run(src, bs).await.ok(), Some(want), "{stage} {name} {bs}");
                assert_eq!(
                    summary(&store),
                    vec![(
                        stage.to_owned(),
                        Some("2".to_owned()),
                        "panicked: two".to_owned()
                    )],
                    "{stage} {name} {bs}"
                );
                let element = store.lock().ok().and_then(|mut v| v.pop()?.element);
                let element = element.and_then(|e| e.downcast::<i32>().ok());
                assert_eq!(element.map(|b| *b), Some(2), "{stage}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_value_functions_keep_the_rest_too() {
    for (name, sup) in directives() {
        for bs in SIZES {
            let src = Source::from_iter(0..6)
                .filter_map(|x| (boom_at_2(x) % 2 == 1).then_some(x))
                .with_supervision(sup.clone());
            assert_eq!(run(src, bs).await.ok(), Some(vec![1, 3, 5]), "{name} {bs}");
            let src = Source::from_iter(0..5)
                .flat_map(|x| vec![boom_at_2(x); 2])
                .with_supervision(sup.clone());
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![0, 0, 1, 1, 3, 3, 4, 4]),
                "{name} {bs}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_delivers_what_came_before_and_names_the_element() {
    for bs in SIZES {
        // A copy element is taken from the batch's copy: the error names it, no policy needed.
        let (seen, r) = run_seen(Source::from_iter(0..10).map(boom_at_2), bs).await;
        let err = r.err();
        assert_eq!(seen, vec![0, 1]);
        assert_eq!(
            err.map(|e| (
                e.stage().map(str::to_owned),
                e.element().map(str::to_owned),
                e.to_string()
            )),
            Some((
                Some("map#1".to_owned()),
                Some("2".to_owned()),
                "stage 'map#1' failed on element 2: panicked: boom".to_owned()
            ))
        );
        // An owned element is gone after the panic: with no policy (the hot path) the error
        // names its position.
        let words = ["a", "b", "boom", "c"].map(str::to_owned);
        let src = Source::from_iter(words).map(|s: String| {
            assert!(s != "boom", "boom");
            s.len() as i32
        });
        let (seen, r) = run_seen(src, bs).await;
        assert_eq!(seen, vec![1, 1]);
        assert_eq!(
            r.err()
                .map(|e| (e.element().map(str::to_owned), e.to_string())),
            Some((
                None,
                "stage 'map#1' failed: panicked on element 2 of its input: boom".to_owned()
            ))
        );
        let src = Source::from_iter(0..10).filter(|x| *x != boom_at_2(*x) + 1);
        let err = run(src, bs).await.err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("stage 'filter#1' failed on element 2: panicked: boom".to_owned())
        );
        let src = Source::from_iter(["1", "x"]).try_map(|s: &&str| s.parse::<i32>());
        let err = run(src, bs).await.err();
        assert_eq!(
            err.and_then(|e| e.element().map(str::to_owned)),
            Some("\"x\"".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_types_render_in_errors() {
    #[derive(Debug, Clone, PartialEq)]
    struct Reading {
        id: u8,
    }
    register_debug::<Reading>();
    let src =
        Source::from_iter(vec![Reading { id: 1 }, Reading { id: 2 }]).try_map(|r: &Reading| {
            if r.id == 2 {
                Err(StageError::user("bad"))
            } else {
                Ok(r.id)
            }
        });
    let err = run(src, 8).await.err();
    assert_eq!(
        err.and_then(|e| e.element().map(str::to_owned)),
        Some("Reading { id: 2 }".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_sink_resumes_after_a_panic() {
    for bs in SIZES {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&seen);
        let sink = Sink::for_each(move |x: i32| {
            let x = boom_at_2(x);
            if let Ok(mut v) = s2.lock() {
                v.push(x);
            }
        })
        .with_supervision(Supervision::resume());
        let m = Materializer::new().with_batch_size(bs);
        let fut = Source::from_iter(0..6).run_with_on(sink, &m);
        let r = match fut {
            Ok(f) => tokio::time::timeout(Duration::from_secs(20), f).await.ok(),
            Err(_) => None,
        };
        assert!(matches!(r, Some(Ok(()))));
        assert_eq!(
            seen.lock().map(|v| v.clone()).ok(),
            Some(vec![0, 1, 3, 4, 5])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_with_keeps_the_pairs_around_a_failing_one() {
    let f = |a: i32, b: i32| {
        assert!(a != 2, "pair two");
        a * 10 + b
    };
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(0..6)
                .zip_with(Source::from_iter(0..6), f)
                .with_supervision(sup.clone().with_dead_letters(dl));
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![0, 11, 33, 44, 55]),
                "{name} {bs}"
            );
            let letters = summary(&store);
            assert_eq!(letters.len(), 1);
            assert!(letters[0].2.ends_with("pair two"), "{letters:?}");
        }
    }
    for bs in SIZES {
        let src = Source::from_iter(0..6).zip_with(Source::from_iter(0..6), f);
        let (seen, r) = run_seen(src, bs).await;
        let err = r.err();
        assert_eq!(seen, vec![0, 11], "{bs}");
        assert!(err.is_some_and(|e| e.to_string().contains("pair two")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_async_restart_goes_on_and_stop_emits_what_came_before() {
    let f = |x: i32| async move {
        if x == 2 {
            Err(StageError::user("two"))
        } else {
            Ok(x)
        }
    };
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(0..6)
                .via(map_async(2, f).with_supervision(sup.clone().with_dead_letters(dl)));
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![0, 1, 3, 4, 5]),
                "{name} {bs}"
            );
            assert_eq!(summary(&store).len(), 1);
        }
    }
    for bs in SIZES {
        let (seen, r) = run_seen(Source::from_iter(0..6).via(map_async(1, f)), bs).await;
        let err = r.err();
        assert_eq!(seen, vec![0, 1], "{bs}");
        assert_eq!(err.map(|e| e.message().to_owned()), Some("two".to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_fold_resume_keeps_every_key_and_restart_clears_them() {
    for bs in SIZES {
        for (sup, odd) in [(Supervision::resume(), 25), (Supervision::restart(), 24)] {
            let src = Source::from_iter(0..10)
                .key_by(|x: &i32| x % 2)
                .fold(0, |a, x| a + boom_at_2(x))
                .with_supervision(sup);
            let mut got = run(src, bs).await.unwrap_or_default();
            got.sort();
            assert_eq!(got, vec![(0, 18), (1, odd)], "{bs}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_map_merge_factory_panics_are_supervised() {
    let f = |x: i32| Source::from_iter(vec![boom_at_2(x); 2]);
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(0..5)
                .flat_map_concat(f)
                .with_supervision(sup.clone().with_dead_letters(dl));
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![0, 0, 1, 1, 3, 3, 4, 4]),
                "{name} {bs}"
            );
            assert_eq!(
                summary(&store),
                vec![(
                    "flat_map_concat#1".to_owned(),
                    None,
                    "panicked: boom".to_owned()
                )]
            );
        }
    }
    let err = run(Source::from_iter(0..5).flat_map_concat(f), 4)
        .await
        .err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("stage 'flat_map_concat#1' failed: panicked: boom".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_key_panics_are_supervised_and_stop_delivers_what_came_before() {
    let key = |x: &i32| boom_at_2(*x) % 2;
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(0..8)
                .group_by(4, key)
                .merge_substreams_via(simple::map(|x: i32| x))
                .with_supervision(sup.clone().with_dead_letters(dl));
            let mut got = run(src, bs).await.unwrap_or_default();
            got.sort();
            assert_eq!(got, vec![0, 1, 3, 4, 5, 6, 7], "{name} {bs}");
            assert_eq!(
                summary(&store),
                vec![(
                    "group_by#1".to_owned(),
                    Some("2".to_owned()),
                    "panicked: boom".to_owned()
                )]
            );
        }
    }
    for bs in SIZES {
        let src = Source::from_iter(0..8)
            .group_by(4, key)
            .merge_substreams_via(simple::map(|x: i32| x));
        let (mut seen, r) = run_seen(src, bs).await;
        let err = r.err();
        seen.sort();
        assert_eq!(seen, vec![0, 1], "{bs}");
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("stage 'group_by#1' failed on element 2: panicked: boom".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_predicate_panics_are_supervised_and_stop_delivers_what_came_before() {
    let pred = |x: &i32| boom_at_2(*x) % 3 == 0;
    let sum = || simple::fold(0, |a: i32, x: i32| a * 10 + x);
    for (name, sup) in directives() {
        for bs in SIZES {
            let (dl, store) = letters();
            let src = Source::from_iter(1..8)
                .split_when(pred)
                .merge_substreams_via(sum())
                .with_supervision(sup.clone().with_dead_letters(dl));
            // Segments [1], [3, 4, 5], [6, 7]: 2 is dead-lettered.
            assert_eq!(
                run(src, bs).await.ok(),
                Some(vec![1, 345, 67]),
                "{name} {bs}"
            );
            assert_eq!(
                summary(&store),
                vec![(
                    "split_when#1".to_owned(),
                    Some("2".to_owned()),
                    "panicked: boom".to_owned()
                )]
            );
        }
    }
    for bs in SIZES {
        let src = Source::from_iter(1..8)
            .split_after(|x: &i32| boom_at_2(*x) > 10)
            .merge_substreams_via(sum());
        let (seen, r) = run_seen(src, bs).await;
        let err = r.err();
        assert_eq!(seen, vec![1], "{bs}");
        assert!(err.is_some_and(|e| e.element() == Some("2")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_fails_rather_than_start_a_new_total_after_a_panic() {
    for bs in SIZES {
        let src = Source::from_iter(0..6).via(
            simple::reduce(|a: i32, x: i32| a + boom_at_2(x))
                .with_supervision(Supervision::resume()),
        );
        let err = run(src, bs).await.err();
        assert_eq!(
            err.map(|e| e.message().to_owned()),
            Some("reduce: the accumulator was lost when the function panicked".to_owned()),
            "{bs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fold_sink_resumes_with_the_accumulator_before_the_panic() {
    for bs in SIZES {
        for (sup, want) in [(Supervision::resume(), 13), (Supervision::restart(), 13)] {
            let sink = Sink::fold(0, |a: i32, x: i32| a + boom_at_2(x)).with_supervision(sup);
            let m = Materializer::new().with_batch_size(bs);
            let r = match Source::from_iter(0..6).run_with_on(sink, &m) {
                Ok(f) => tokio::time::timeout(Duration::from_secs(20), f).await.ok(),
                Err(_) => None,
            };
            // A sink's Restart acts as Resume: its materialized value belongs to the user.
            assert_eq!(r.and_then(Result::ok), Some(want), "{bs}");
        }
    }
}
