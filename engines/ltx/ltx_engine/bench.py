"""GPU benchmark of the engine: seconds per clip and peak GPU memory per pipeline and size.

Starts the engine process (`ltx_engine.server`) once, as the worker does, and sends it the same
request several times per case through the protocol. Reports the model load time, then for each
case the median and best wall seconds from `generate` to `result` (the first run of a case is
reported apart: it includes building the first fused transformer and cold kernels), the
engine's own stage timings, and the peak memory torch allocated.

    python -m ltx_engine.bench --checkpoint F --gemma DIR --spatial-upsampler F \\
        [--distilled-lora F] [--pipeline distilled|dev] \\
        [--cases 768x512x121,1280x704x121,1920x1088x121] [--runs 3] [--out results.json]

Run from engines/ltx with the engine's environment (docs/gpu.md has the full procedure).

    python -m ltx_engine.bench --random-weights [--config full|tiny] [--cases ...] [--out F]

times the full-size model built with random weights from the vendored config instead: no
checkpoint, no Gemma, no download (ltx_engine/random_bench.py).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .flags import add_engine_args, engine_argv


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ltx_engine.bench")
    add_engine_args(p)
    p.add_argument("--cases", default="768x512x121,1280x704x121,1920x1088x121",
                   help="WIDTHxHEIGHTxFRAMES, comma-separated (sizes in multiples of 64, frames 8k+1)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--out", help="write the results as JSON here too")
    return p.parse_args(argv)


class Engine:
    def __init__(self, args: argparse.Namespace):
        command = [sys.executable, "-m", "ltx_engine.server", *engine_argv(args)]
        started = time.monotonic()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        cwd=Path(__file__).resolve().parent.parent,
                                        env={**os.environ, "TQDM_DISABLE": "1"})
        self.hello = self.next_event()
        if self.hello.get("type") != "hello":
            raise SystemExit(f"the engine did not start: {self.hello}")
        self.load_seconds = time.monotonic() - started

    def next_event(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the engine exited ({self.process.wait()})")
        return json.loads(line)

    def generate(self, job: dict) -> tuple[float, dict]:
        started = time.monotonic()
        self.process.stdin.write(json.dumps({"type": "generate", **job}) + "\n")
        self.process.stdin.flush()
        while True:
            event = self.next_event()
            if event["type"] == "result":
                return time.monotonic() - started, event
            if event["type"] == "error":
                raise SystemExit(f"the job failed: {event}")

    def close(self) -> None:
        self.process.stdin.write(json.dumps({"type": "shutdown"}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main(argv: list[str]) -> int:
    if "--random-weights" in argv:  # the full-size model with random weights: no files, no engine process
        from . import random_bench

        return random_bench.main([a for a in argv if a != "--random-weights"])
    args = parse_args(argv)
    engine = Engine(args)
    print(f"engine: {args.pipeline} on {engine.hello.get('device')}, versions {engine.hello.get('versions')}")
    print(f"model load: {engine.load_seconds:.1f} s")
    results = {"pipeline": args.pipeline, "hello": engine.hello, "load_seconds": engine.load_seconds, "cases": []}
    print("| size | frames | first run s | median s | best s | stage 1 s | stage 2 s | decode s | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.cases.split(","):
            width, height, frames = (int(v) for v in case.lower().split("x"))
            runs = []
            for run in range(args.runs + 1):
                job = {"id": f"{case}-{run}", "prompt": "A lighthouse on a cliff at dusk, waves crashing below",
                       "seed": 42, "width": width, "height": height, "num_frames": frames, "fps": args.fps,
                       "images": [], "loras": [], "audio": True, "out_dir": f"{scratch}/{case}-{run}"}
                seconds, result = engine.generate(job)
                runs.append({"seconds": seconds, "timings": result.get("timings", {}),
                             "peak_memory_bytes": result.get("peak_memory_bytes")})
            warm = runs[1:] or runs
            median = statistics.median(r["seconds"] for r in warm)
            stage = {k: statistics.median(r["timings"].get(k, 0.0) for r in warm) for k in ("stage_1", "stage_2",
                                                                                           "decode")}
            peak = max((r["peak_memory_bytes"] or 0) for r in runs) / 2**30
            print(f"| {width}×{height} | {frames} | {runs[0]['seconds']:.1f} | {median:.1f} | "
                  f"{min(r['seconds'] for r in warm):.1f} | {stage['stage_1']:.1f} | {stage['stage_2']:.1f} | "
                  f"{stage['decode']:.1f} | {peak:.1f} |", flush=True)
            results["cases"].append({"width": width, "height": height, "frames": frames, "runs": runs,
                                     "median_seconds": median, "peak_memory_gib": peak})
    engine.close()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
