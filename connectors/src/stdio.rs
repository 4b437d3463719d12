//! The process's standard input as a source and standard output as a sink, in lines or JSON
//! lines, so a job sits in a shell pipeline (`cat file | job | head`).
//!
//! stdin is read by tokio's blocking reader thread: a run that ends while stdin is still open
//! leaves that thread blocked in its read until the next line or EOF (a command-line tool
//! exits the process when its run is done).

use crate::read::ReadStats;
use crate::sink::{Target, WriteStage};
use crate::source::{Origin, ReadStage};
use crate::wire::{
    DEFAULT_MAX_FRAME, DecodeFn, EncodeFn, Framing, decode_json, decode_text, encode_json,
    encode_text,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use weir_graph::{Sink, SinkFuture, Source, promise};

fn stdin<T: Send + 'static>(decode: DecodeFn<T>) -> Source<T, Arc<ReadStats>> {
    Source::from_async("stdin", move |_| {
        let stats = Arc::new(ReadStats::default());
        let logic = ReadStage {
            origin: Origin::Stdin,
            framing: Framing::Lines,
            max_frame: DEFAULT_MAX_FRAME,
            read_buffer: 64 * 1024,
            last_line_ok: true,
            decode: Arc::clone(&decode),
            stats: Arc::clone(&stats),
        };
        Ok((logic, stats))
    })
}

/// The lines of stdin as text (without `\n` or `\r\n`; a last line without a newline counts);
/// materializes to what was read.
/// Emits: each line once its newline (or EOF) arrived.
/// Backpressures: stdin is not read while downstream has no credit.
/// Completes: at EOF on stdin.
/// Cancels: when downstream cancels.
/// Fails: when stdin cannot be read, or a line is longer than 1 MiB or not UTF-8 and the
/// supervision does not resume (Resume dead-letters it and goes on).
pub fn stdin_lines() -> Source<String, Arc<ReadStats>> {
    stdin(decode_text())
}

/// The lines of stdin as JSON documents of `T` (as [`stdin_lines`]; a line that is not valid
/// JSON of `T` is a bad frame).
pub fn stdin_json_lines<T: DeserializeOwned + Send + 'static>() -> Source<T, Arc<ReadStats>> {
    stdin(decode_json())
}

fn stdout<T: Send + 'static>(encode: EncodeFn<T>) -> Sink<T, SinkFuture<()>> {
    Sink::from_async("stdout", move |_| {
        let (p, done) = promise();
        let logic = WriteStage {
            target: Target::Stdout,
            framing: Framing::Lines,
            max_frame: usize::MAX,
            encode: Arc::clone(&encode),
            promise: p,
        };
        Ok((logic, done))
    })
}

/// Writes each text element as a line on stdout; completes with the stream.
/// Emits: each element followed by `\n`; every batch is written and flushed.
/// Backpressures: while stdout does not take more bytes.
/// Completes: when upstream completes, or when stdout's reader went away (a closed pipe, as
/// `| head` does, is downstream cancellation: upstream is cancelled and the future completes
/// with `Ok`).
/// Cancels: upstream when stdout closed or the stage fails.
/// Fails: when stdout fails otherwise, or an element holds a newline and the supervision does
/// not resume.
pub fn stdout_lines() -> Sink<String, SinkFuture<()>> {
    stdout(encode_text())
}

/// Writes each element as one line of compact JSON on stdout (as [`stdout_lines`]).
pub fn stdout_json_lines<T: Serialize + Send + 'static>() -> Sink<T, SinkFuture<()>> {
    stdout(encode_json())
}
