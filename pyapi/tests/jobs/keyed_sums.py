"""A checkpointed keyed job for the restart tests: ``from_lines(INPUT) -> map(parse) ->
key_by(0).sum(1) -> to_files(OUT)`` with checkpoints every INTERVAL seconds into STATE;
``parse`` sleeps DELAY seconds per line so a kill lands mid-run. Prints one JSON line with the
run's checkpoint ids and committed files."""

import json
import sys
import time

import weir

inp, out, state, interval, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])


def parse(line):
    if delay:
        time.sleep(delay)
    key, value = line.split(",")
    return key, int(value)


h = (
    weir.Source.from_lines(inp)
    .map(parse)
    .key_by(0)
    .sum(1)
    .uid("sums")
    .map(lambda kv: f"{kv[0]},{kv[1]}")
    .to(weir.Sink.to_files(out), "right")
    .start(batch_size=8, state_dir=state, checkpoint_interval=interval)
)
committed = h.wait()
print(json.dumps({"restored": h.restored_checkpoint, "latest": h.latest_checkpoint, "committed": committed}))
