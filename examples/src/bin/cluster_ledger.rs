//! `cargo run -p weir-examples --bin cluster_ledger -- --nodes 3`: a ledger actor on node 0
//! of a local cluster of this program's processes, told amounts by every node through remote
//! refs; run by a local cluster (`WEIR_NODES` set) it is one node and prints the total.
use weir::cluster::job::{JobNode, LocalCluster, NodeSettings};

const PER_NODE: u64 = 1000;

fn main() -> Result<(), weir_examples::ExampleError> {
    if let Some(s) = NodeSettings::from_env()? {
        let rt = weir::engine::Runtime::new()?;
        let total = rt.block_on(async {
            let node = JobNode::start(&s).await?;
            let total = weir_examples::cluster_ledger::run_node(&node, PER_NODE).await?;
            node.finish().await?;
            Ok::<_, weir_examples::ExampleError>(total)
        })?;
        println!("{total}");
        return Ok(());
    }
    let args: Vec<String> = std::env::args().collect();
    let nodes = match args.iter().position(|a| a == "--nodes") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .ok_or("--nodes N")?,
        None => 3,
    };
    let dir = std::env::temp_dir().join(format!("weir-cluster-ledger-{}", std::process::id()));
    let exe = std::env::current_exe()?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let out = |s: &NodeSettings| logs.join(format!("e{}-node-{}.stdout", s.epoch, s.node));
    let outcome = LocalCluster::new(nodes, &dir).run(|s| {
        std::process::Command::new(&exe)
            .envs(s.env())
            .stdout(std::fs::File::create(out(s))?)
            .spawn()
    })?;
    for node in 0..nodes {
        let s = NodeSettings::local(node, nodes, &dir, outcome.epoch);
        let total = std::fs::read_to_string(out(&s))?;
        println!("node {node}: ledger total {}", total.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
