//! Leases in an object store ([`StoreLease`]): one owner at a time; an owner that keeps
//! renewing keeps it however long others wait; one that stops loses it a whole ttl after the
//! others last saw it change, not before; a release frees it at once; of many contenders for a
//! free lease exactly one wins, on the local file system and in memory alike.

use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_cluster::lease::{Lease, StoreLease};
use weir_cluster::object_store::ObjectStore;
use weir_cluster::object_store::local::LocalFileSystem;
use weir_cluster::object_store::memory::InMemory;

const TTL: Duration = Duration::from_millis(300);

fn stores(name: &str) -> Vec<(&'static str, Arc<dyn ObjectStore>)> {
    let dir = std::env::temp_dir().join(format!("weir-lease-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    vec![
        ("memory", Arc::new(InMemory::new()) as Arc<dyn ObjectStore>),
        (
            "local",
            Arc::new(LocalFileSystem::new_with_prefix(&dir).unwrap()) as Arc<dyn ObjectStore>,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_renews_keeps_the_lease_and_one_that_stops_loses_it_after_a_ttl() {
    for (kind, store) in stores("renew") {
        let a = StoreLease::new(Arc::clone(&store), "job-7", "a", TTL);
        let b = StoreLease::new(Arc::clone(&store), "job-7", "b", TTL);
        assert!(a.acquire().await.unwrap(), "{kind}");
        assert!(a.holding());
        assert_eq!(a.owner().await.unwrap().as_deref(), Some("a"));
        assert!(!b.acquire().await.unwrap(), "{kind}");
        assert!(!b.holding());
        // a renews every ttl / 3 for three ttls: b, trying all along, never gets it.
        let until = Instant::now() + TTL * 3;
        let mut b_saw = Instant::now();
        while Instant::now() < until {
            tokio::time::sleep(a.renew_every()).await;
            assert!(a.acquire().await.unwrap(), "{kind}: renewal");
            b_saw = Instant::now();
            assert!(!b.acquire().await.unwrap(), "{kind}: taken while renewed");
        }
        // a stops renewing: its own view ends within the ttl of its last renewal ...
        while a.holding() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(b_saw.elapsed() < TTL, "{kind}");
        // ... before b takes it, a whole ttl after b first saw a's last record.
        assert!(!b.acquire().await.unwrap(), "{kind}: taken before the ttl");
        loop {
            if b.acquire().await.unwrap() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(b_saw.elapsed() >= TTL, "{kind}");
        assert!(b.holding());
        assert_eq!(b.owner().await.unwrap().as_deref(), Some("b"));
        // a's renewal finds b's record: it lost the lease.
        assert!(!a.acquire().await.unwrap(), "{kind}");
        assert!(!a.holding());
        // Old records are cleaned up: only the last few stay.
        let mut n = 0;
        let mut list = store.list(None);
        while let Some(m) = futures::StreamExt::next(&mut list).await {
            m.unwrap();
            n += 1;
        }
        assert!(n <= 5, "{kind}: {n} records kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_at_once() {
    for (kind, store) in stores("release") {
        let a = StoreLease::new(Arc::clone(&store), "s", "a", Duration::from_secs(60));
        let b = StoreLease::new(Arc::clone(&store), "s", "b", Duration::from_secs(60));
        assert!(a.acquire().await.unwrap(), "{kind}");
        assert!(!b.acquire().await.unwrap(), "{kind}");
        // Releasing a lease one does not own changes nothing.
        b.release().await.unwrap();
        assert_eq!(a.owner().await.unwrap().as_deref(), Some("a"));
        a.release().await.unwrap();
        assert!(!a.holding());
        assert_eq!(a.owner().await.unwrap(), None);
        assert!(b.acquire().await.unwrap(), "{kind}: free after release");
        assert!(!a.acquire().await.unwrap(), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_contenders_for_a_free_lease_exactly_one_wins() {
    for (kind, store) in stores("race") {
        for round in 0..20 {
            let name = format!("r{round}");
            let contenders: Vec<Arc<StoreLease>> = (0..6)
                .map(|i| {
                    Arc::new(StoreLease::new(
                        Arc::clone(&store),
                        &name,
                        &format!("c{i}"),
                        Duration::from_secs(60),
                    ))
                })
                .collect();
            let tasks: Vec<_> = contenders
                .iter()
                .map(|c| {
                    let c = Arc::clone(c);
                    tokio::spawn(async move { c.acquire().await.unwrap() })
                })
                .collect();
            let mut winners = Vec::new();
            for (i, t) in tasks.into_iter().enumerate() {
                if t.await.unwrap() {
                    winners.push(format!("c{i}"));
                }
            }
            assert_eq!(winners.len(), 1, "{kind} round {round}: {winners:?}");
            assert_eq!(
                contenders[0].owner().await.unwrap().as_ref(),
                winners.first(),
                "{kind}"
            );
            let holding: Vec<bool> = contenders.iter().map(|c| c.holding()).collect();
            assert_eq!(holding.iter().filter(|h| **h).count(), 1, "{kind}");
        }
    }
}
