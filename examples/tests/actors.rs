//! Runs every actor example (as a function and as a binary) and checks its whole output.

use weir_examples::actors::pool::Report;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn counter_want() -> Vec<(String, u64)> {
    [("and", 1), ("cat", 2), ("dog", 2), ("saw", 2), ("the", 4)]
        .into_iter()
        .map(|(w, n)| (w.to_owned(), n))
        .collect()
}

fn tree_want() -> Vec<String> {
    strings(&[
        "left started",
        "right started",
        "left total 1",
        "right total 10",
        "left restarting after: negative amount -1",
        "left started",
        "left total 2",
        "right total 30",
    ])
}

fn backoff_want() -> Vec<String> {
    strings(&[
        "0 ms: worker started",
        "0 ms: job 1 done",
        "100 ms: worker started",
        "100 ms: job 2 done",
        "310 ms: worker started",
        "310 ms: job 3 done",
    ])
}

fn pool_want(size: usize, jobs: u64) -> Vec<Report> {
    let mut want: Vec<Report> = (0..jobs)
        .map(|job| Report::Squared {
            job,
            worker: (job % size as u64) as usize,
            square: job * job,
        })
        .collect();
    want.extend((0..size).map(|worker| {
        Report::Handled {
            worker,
            jobs: (0..jobs)
                .filter(|j| (j % size as u64) as usize == worker)
                .count() as u64,
        }
    }));
    want
}

fn bank_want() -> Vec<String> {
    strings(&[
        "deposit 100: balance 100",
        "audit opened at balance 100",
        "audit closed, replaying 3",
        "withdraw 30: balance 70",
        "deposit 5: balance 75",
        "withdraw 500: refused, balance 75",
        "withdraw 20: balance 55",
        "no audit open",
    ])
}

#[tokio::test]
async fn counter_counts_every_word() {
    let out = weir_examples::actors::counter::run().await.unwrap();
    assert_eq!(out, counter_want());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_restarts_only_the_failed_child() {
    let out = weir_examples::actors::tree::run().await.unwrap();
    assert_eq!(out, tree_want());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_restarts_after_100_then_200_ms_of_run_time() {
    let out = weir_examples::actors::supervised_backoff::run()
        .await
        .unwrap();
    assert_eq!(out, backoff_want());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_routes_round_robin() {
    for (size, jobs) in [(3, 9), (4, 10), (1, 3)] {
        let out = weir_examples::actors::pool::run(size, jobs).await.unwrap();
        assert_eq!(out, pool_want(size, jobs), "size {size}, jobs {jobs}");
    }
}

#[tokio::test]
async fn bank_replays_stashed_transactions_in_order() {
    let out = weir_examples::actors::bank::run().await.unwrap();
    assert_eq!(out, bank_want());
}

fn run_bin(path: &str) -> String {
    let out = std::process::Command::new(path).output().unwrap();
    assert!(
        out.status.success(),
        "{path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn actor_example_binaries_print_their_result() {
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_actor_counter")),
        format!("{:?}", counter_want())
    );
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_actor_tree")),
        format!("{:?}", tree_want())
    );
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_actor_supervised_backoff")),
        format!("{:?}", backoff_want())
    );
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_actor_pool")),
        format!("{:?}", pool_want(3, 9))
    );
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_actor_bank")),
        format!("{:?}", bank_want())
    );
}
