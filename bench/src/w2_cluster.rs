//! `weir-bench w2-job --nodes N`: W2 (word count over the Zipf corpus) as one job over a local
//! cluster of N node processes (`w2-node`, this binary), started as children through
//! [`LocalCluster`]. Every node makes the same corpus (same seed), reads its share of the
//! lines (every N-th), sends each word to the node that owns it (by its stable key group, over
//! QUIC with mutual TLS on loopback) and counts the words it owns; each node writes its counts
//! to `DIR/out/node-I.tsv`. The harness also counts the corpus in one process (the hand-written
//! loop and the same graph without the exchange) and compares the union of the nodes' counts
//! with both: one JSON line with the checksums, `ok`, and the times.

use super::{checksum, parse_count};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use weir::prelude::*;
use weir_cluster::exchange::exchange;
use weir_cluster::job::{JobNode, LocalCluster, NodeSettings};

/// Flags of `w2-job`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Node processes (1 runs the same plan with no remote hop).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// Words in the corpus (ten per line); accepts `1e6`.
    #[arg(long, default_value = "1e6", value_parser = parse_count)]
    pub words: u64,
    /// The shared directory (default: a fresh temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Flags of `w2-node` (started by `w2-job`, its place in the job from the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Words in the corpus (ten per line).
    #[arg(long, value_parser = parse_count)]
    pub words: u64,
    /// Where this node writes its counts (`word<TAB>count` lines).
    #[arg(long)]
    pub output: PathBuf,
}

/// The corpus of `words` words, the same in every process.
fn corpus(words: u64) -> Vec<String> {
    weir::demo::zipf_corpus((words / 10) as usize, 10, 10_000, 42)
}

/// `w2-node`: counts this node's words; prints `{"seconds":S,"words":W}` (its run).
pub fn node_main(a: &NodeArgs) -> i32 {
    let run = async {
        let s = NodeSettings::from_env()
            .map_err(|e| e.to_string())?
            .ok_or("WEIR_NODES is not set: start it through w2-job")?;
        let lines = corpus(a.words);
        let node = JobNode::start(&s).await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        let nodes = node.nodes().clone();
        let (me, n) = (nodes.node, nodes.len());
        let mine: Vec<String> = lines
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % n == me)
            .map(|(_, l)| l)
            .collect();
        let owners = nodes.clone();
        let by_word =
            exchange(&nodes, 1, move |w: &String| owners.owner(w)).map_err(|e| e.to_string())?;
        let counts = Source::from_iter(mine)
            .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .via(by_word)
            .key_by(|w: &String| w.clone())
            .count()
            .run_with(Sink::collect())
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        node.finish().await.map_err(|e| e.to_string())?;
        let words: u64 = counts.iter().map(|(_, c)| c).sum();
        write_counts(&a.output, &counts).map_err(|e| format!("{}: {e}", a.output.display()))?;
        Ok::<String, String>(format!("{{\"seconds\":{secs:.6},\"words\":{words}}}"))
    };
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("w2-node: {e}");
            return 1;
        }
    };
    match rt.block_on(run) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("w2-node: {e}");
            1
        }
    }
}

fn write_counts(path: &Path, counts: &[(String, u64)]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for (w, c) in counts {
        writeln!(f, "{w}\t{c}")?;
    }
    f.flush()?;
    f.get_ref().sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The counts a node wrote, checked: a word may appear once over all nodes.
fn read_counts(path: &Path, into: &mut HashMap<String, u64>) -> Result<(), String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for line in s.lines() {
        let (w, c) = line
            .split_once('\t')
            .ok_or_else(|| format!("{}: malformed line {line:?}", path.display()))?;
        let c: u64 = c
            .parse()
            .map_err(|e| format!("{}: {line:?}: {e}", path.display()))?;
        if into.insert(w.to_owned(), c).is_some() {
            return Err(format!("word {w:?} counted on two nodes"));
        }
    }
    Ok(())
}

fn json_f64(line: &str, field: &str) -> Option<f64> {
    let at = line.find(&format!("\"{field}\":"))? + field.len() + 3;
    let rest = &line[at..];
    rest[..rest.find([',', '}']).unwrap_or(rest.len())]
        .parse()
        .ok()
}

/// `w2-job`: runs the job, prints the JSON line; 1 when it failed or its counts differ.
pub fn main(a: &Args) -> i32 {
    match run(a) {
        Ok((line, ok)) => {
            println!("{line}");
            i32::from(!ok)
        }
        Err(e) => {
            eprintln!("w2-job: {e}");
            1
        }
    }
}

fn run(a: &Args) -> Result<(String, bool), String> {
    let n = usize::from(a.nodes);
    let (dir, temporary) = crate::work_dir(a.dir.as_deref(), "w2-job");
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;

    // The single-process references: the plain loop and the same graph without an exchange.
    let lines = corpus(a.words);
    let mut base: HashMap<&str, u64> = HashMap::new();
    for l in &lines {
        for w in l.split(' ') {
            *base.entry(w).or_default() += 1;
        }
    }
    let expected = checksum(base.into_iter().collect());
    let rt = weir::engine::Runtime::new().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let single = rt
        .block_on(async {
            Source::from_iter(lines.clone())
                .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
                .key_by(|w: &String| w.clone())
                .count()
                .run_with(Sink::collect())
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("the single-process run: {e}"))?;
    let single_secs = t.elapsed().as_secs_f64();
    let single_sum = checksum(single.iter().map(|(w, c)| (w.as_str(), *c)).collect());
    let words = lines
        .iter()
        .map(|l| l.split(' ').count() as u64)
        .sum::<u64>();
    drop(lines);

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let out = |i: usize| dir.join("out").join(format!("node-{i}.tsv"));
    let t = Instant::now();
    let outcome = LocalCluster::new(n, dir.join("cluster"))
        .run(|s: &NodeSettings| {
            let log = |what: &str| -> std::io::Result<Stdio> {
                let p = logs.join(format!("e{:04}-node-{}.{what}", s.epoch, s.node));
                std::fs::File::create(&p).map(Stdio::from)
            };
            Command::new(&exe)
                .arg("w2-node")
                .args(["--words", &a.words.to_string()])
                .arg("--output")
                .arg(out(s.node))
                .envs(s.env())
                .stdin(Stdio::null())
                .stdout(log("stdout")?)
                .stderr(log("stderr")?)
                .spawn()
        })
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let mut counts = HashMap::new();
    let mut node_secs = 0f64;
    for i in 0..n {
        read_counts(&out(i), &mut counts)?;
        let p = logs.join(format!("e{:04}-node-{i}.stdout", outcome.epoch));
        let line = std::fs::read_to_string(&p).unwrap_or_default();
        node_secs = node_secs.max(json_f64(&line, "seconds").unwrap_or(0.0));
    }
    let got = checksum(counts.iter().map(|(w, c)| (w.as_str(), *c)).collect());
    let ok = got == expected && single_sum == expected;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok((
        format!(
            "{{\"workload\":\"w2_job\",\"nodes\":{n},\"words\":{words},\"distinct\":{},\"seconds\":{secs:.6},\"node_seconds\":{node_secs:.6},\"single_seconds\":{single_secs:.6},\"ratio_to_single\":{:.3},\"attempts\":{},\"checksum\":\"{got}\",\"expected\":\"{expected}\",\"single_checksum\":\"{single_sum}\",\"ok\":{ok}}}",
            counts.len(),
            single_secs / node_secs.max(1e-9),
            outcome.epoch,
        ),
        ok,
    ))
}
