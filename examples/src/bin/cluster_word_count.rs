//! `cargo run -p weir-examples --bin cluster_word_count -- --nodes 3`: word count over three
//! node processes of this program (it starts them as a local cluster); run by a local cluster
//! (`WEIR_NODES` set) it is one node and prints the counts of the words it owns.
use weir::cluster::job::{JobNode, LocalCluster, NodeSettings};

fn main() -> Result<(), weir_examples::ExampleError> {
    let lines = weir::demo::zipf_corpus(10_000, 10, 1_000, 7);
    if let Some(s) = NodeSettings::from_env()? {
        let rt = weir::engine::Runtime::new()?;
        let counts = rt.block_on(async {
            let node = JobNode::start(&s).await?;
            let counts = weir_examples::cluster_word_count::run_node(&lines, &node).await?;
            node.finish().await?;
            Ok::<_, weir_examples::ExampleError>(counts)
        })?;
        for (w, c) in counts {
            println!("{w}\t{c}");
        }
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
    let dir = std::env::temp_dir().join(format!("weir-cluster-word-count-{}", std::process::id()));
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
    let mut counts: Vec<(String, u64)> = Vec::new();
    for node in 0..nodes {
        let s = NodeSettings::local(node, nodes, &dir, outcome.epoch);
        for line in std::fs::read_to_string(out(&s))?.lines() {
            if let Some((w, c)) = line.split_once('\t') {
                counts.push((w.to_owned(), c.parse()?));
            }
        }
    }
    counts.sort_by_key(|e| std::cmp::Reverse(e.1));
    println!(
        "{} distinct words over {nodes} nodes; the most frequent:",
        counts.len()
    );
    for (w, c) in counts.iter().take(10) {
        println!("{w}\t{c}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
