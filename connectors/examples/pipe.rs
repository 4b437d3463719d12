//! `pipe [lines|json]`: copies stdin to stdout through a weir job, line by line (or JSON line
//! by JSON line, re-encoded compactly), so `cat file | pipe | head -1` prints the first line
//! and exits 0 once `head` closed the pipe.

use weir_connectors::stdio;
use weir_engine::Runtime;
use weir_engine::prelude::*;
use weir_graph::Keep;

fn main() {
    let json = std::env::args().nth(1).as_deref() == Some("json");
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pipe: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    let r = rt.block_on(async move {
        let done = if json {
            stdio::stdin_json_lines::<serde_json::Value>()
                .to_mat(stdio::stdout_json_lines(), Keep::right)
                .run()
        } else {
            stdio::stdin_lines()
                .to_mat(stdio::stdout_lines(), Keep::right)
                .run()
        };
        match done {
            Ok(f) => f.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    // Exit at once: tokio's stdin thread may still be blocked in a read.
    std::process::exit(match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pipe: {e}");
            1
        }
    });
}
