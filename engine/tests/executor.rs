//! Islands on executors other than tokio: placement, fusion only within one executor, services.

mod common;
use common::*;
use std::sync::{Arc, Mutex};
use weir_engine::prelude::*;
use weir_engine::{IslandExecutor, Materializer};
use weir_graph::{ExecutorId, Flow, Keep};

const X: ExecutorId = ExecutorId("test-thread");

/// Runs each task on a thread of its own named `x-<island>`, with the runtime entered.
struct Threads(tokio::runtime::Handle);

impl IslandExecutor for Threads {
    fn spawn(&self, name: &str, task: futures::future::BoxFuture<'static, ()>) {
        let h = self.0.clone();
        let _ = std::thread::Builder::new()
            .name(format!("x-{name}"))
            .spawn(move || {
                let _g = h.enter();
                futures::executor::block_on(task);
            });
    }
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

/// Records the thread each element passed on.
fn seen(log: Arc<Mutex<Vec<String>>>) -> Flow<u64, u64, ()> {
    map(move |x| {
        if let Ok(mut l) = log.lock() {
            l.push(thread_name());
        }
        x
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_run_on_their_executor_and_fuse_only_with_their_own() {
    let on_x = Arc::new(Mutex::new(Vec::new()));
    let on_tokio = Arc::new(Mutex::new(Vec::new()));
    let g = range(0, 10)
        .via(seen(Arc::clone(&on_x)))
        .on_executor(X)
        .via(map(|x| x * 2))
        .on_executor(X)
        .via(seen(Arc::clone(&on_tokio)))
        .to_mat(collect(), Keep::right);
    let m =
        Materializer::new().with_executor(X, Arc::new(Threads(tokio::runtime::Handle::current())));
    let plan = m.plan(&g).unwrap();
    let shape: Vec<(usize, ExecutorId)> = plan
        .islands
        .iter()
        .map(|i| (i.nodes.len(), i.executor))
        .collect();
    // The range source is on tokio; both stages on X fuse; the rest is a tokio chain.
    assert_eq!(
        shape,
        vec![(1, ExecutorId::TOKIO), (2, X), (2, ExecutorId::TOKIO)]
    );
    assert!(
        plan.to_mermaid()
            .contains("island 1 (chain, x1, on test-thread)")
    );
    let (fut, handle) = m.materialize(&g).unwrap();
    assert_eq!(
        fut.await.unwrap(),
        (0..10).map(|x| x * 2).collect::<Vec<_>>()
    );
    handle.wait().await.unwrap();
    let x = on_x.lock().unwrap().clone();
    assert_eq!(x.len(), 10);
    assert!(x.iter().all(|t| t.starts_with("x-island-1")), "{x:?}");
    let t = on_tokio.lock().unwrap().clone();
    assert_eq!(t.len(), 10);
    assert!(t.iter().all(|t| !t.starts_with("x-")), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_executor_takes_every_stage_without_one() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let g = range(0, 5)
        .via(seen(Arc::clone(&log)))
        .async_boundary()
        .via(seen(Arc::clone(&log)))
        .to_mat(collect(), Keep::right);
    let m = Materializer::new()
        .with_executor(X, Arc::new(Threads(tokio::runtime::Handle::current())))
        .with_default_executor(X);
    let (fut, handle) = m.materialize(&g).unwrap();
    assert_eq!(fut.await.unwrap(), vec![0, 1, 2, 3, 4]);
    handle.wait().await.unwrap();
    let l = log.lock().unwrap().clone();
    assert_eq!(l.len(), 10);
    assert!(l.iter().all(|t| t.starts_with("x-island-")), "{l:?}");
}

#[tokio::test]
async fn an_unknown_executor_is_a_setting_error() {
    let g = range(0, 5)
        .via(map(|x| x))
        .on_executor(X)
        .to_mat(collect(), Keep::right);
    let err = Materializer::new().materialize(&g).err().unwrap();
    assert_eq!(
        err.to_string(),
        "invalid materializer setting: island 1 runs on executor 'test-thread', which the materializer does not have"
    );
}

#[tokio::test]
async fn cancelling_a_run_stops_tasks_on_another_executor() {
    let g = naturals()
        .via(map(|x| x))
        .on_executor(X)
        .to_mat(collect(), Keep::right);
    let m =
        Materializer::new().with_executor(X, Arc::new(Threads(tokio::runtime::Handle::current())));
    let (_fut, handle) = m.materialize(&g).unwrap();
    handle.cancel();
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), handle.wait()).await;
    assert!(r.is_ok(), "the run did not end");
}

#[tokio::test]
async fn stage_factories_see_the_run_services() {
    struct Tag(&'static str);
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = Arc::clone(&got);
    let probe = Flow::<u64, u64, ()>::from_logic("probe", move |info| {
        if let Ok(mut g) = g2.lock() {
            g.push(info.services.get::<Tag>().map(|t| t.0));
        }
        Ok((Pass, ()))
    });
    let g = range(0, 3).via(probe).to_mat(collect(), Keep::right);
    let fut = g
        .run_on(&Materializer::new().with_service(Arc::new(Tag("state"))))
        .unwrap();
    assert_eq!(fut.await.unwrap(), vec![0, 1, 2]);
    let fut = g.run_on(&Materializer::new()).unwrap();
    assert_eq!(fut.await.unwrap(), vec![0, 1, 2]);
    assert_eq!(*got.lock().unwrap(), vec![Some("state"), None]);
}

/// Passes every element on.
struct Pass;

impl weir_graph::FlowLogic<u64, u64> for Pass {
    fn on_batch(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        _cx: &mut weir_graph::StageCx<'_>,
    ) -> Result<(), weir_graph::StageError> {
        out.append(input);
        Ok(())
    }
}
