"""A stand-in for the LTX engine process that speaks its protocol (engines/ltx/ltx_engine/
protocol.py) with the standard library only, for the worker's fault tests. What it does is
chosen by the prompt:

  "crash"  the process exits in the middle of the job
  "hang"   it stops answering (and ignores cancel)
  "oom"    it reports out_of_memory
  "slow"   50 steps of 0.1 s; a cancel stops it at its next step
  "hold N" holds the "GPU" for N ms, then the clip; logs "held <job read> <result sent>" in
           wall-clock seconds, from which the benchmark takes the engine's idle gap between jobs
  other    a solid-colour clip with a tone, at once

A checkpoint whose file name contains "broken" makes it fail while "loading"; one whose name
contains "slowload" takes 3 s to load. Every start and
every stop of a job is appended to `engine.log` beside the checkpoint, for the tests to read.
"""

import argparse
import json
import math
import os
import struct
import sys
import threading
import time
from pathlib import Path

args = argparse.ArgumentParser()
for flag in ("--checkpoint", "--gemma", "--spatial-upsampler", "--distilled-lora", "--pipeline", "--device",
             "--transformer-cache-bytes", "--dev-steps"):
    args.add_argument(flag)
args = args.parse_args()
log_path = Path(args.checkpoint).parent / "engine.log"
lock = threading.Lock()
cancelled: set[str] = set()


def log(line: str) -> None:
    with open(log_path, "a") as f:
        f.write(line + "\n")


def send(message: dict) -> None:
    with lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


log(f"started {os.getpid()}")
if "broken" in Path(args.checkpoint).name:
    print("Traceback: safetensors_rust.SafetensorError: invalid header", file=sys.stderr, flush=True)
    send({"type": "error", "id": None, "code": "engine_error", "message": "could not load the models: invalid header"})
    sys.exit(2)
if "slowload" in Path(args.checkpoint).name:
    time.sleep(3)  # a model that takes a while to load
send({"type": "hello", "protocol": 2, "engine": "fake", "pipeline": args.pipeline, "device": "cpu",
      "versions": {}, "memory": {}})

jobs: list[dict] = []
ready = threading.Condition()


def reader() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if message["type"] == "cancel":
            cancelled.add(message["id"])
        else:
            with ready:
                jobs.append(message)
                ready.notify()
    with ready:
        jobs.append({"type": "shutdown"})
        ready.notify()


def run(job: dict) -> None:
    began = time.time()
    job_id, prompt = job["id"], job["prompt"]
    send({"type": "progress", "id": job_id, "stage": "sampling", "step": 0, "total": 8})
    if "crash" in prompt:
        log(f"crashing in {job_id}")
        os._exit(3)
    if "hang" in prompt:
        log(f"hanging in {job_id}")
        time.sleep(3600)
    if "oom" in prompt:
        send({"type": "error", "id": job_id, "code": "out_of_memory",
              "message": "CUDA out of memory. Tried to allocate 20.00 GiB"})
        return
    if "slow" in prompt:
        for step in range(50):
            if job_id in cancelled:
                log(f"cancelled {job_id} at step {step}")
                send({"type": "error", "id": job_id, "code": "cancelled", "message": "cancelled"})
                return
            send({"type": "progress", "id": job_id, "stage": "sampling", "step": step, "total": 50})
            time.sleep(0.1)
    if prompt.startswith("hold "):
        time.sleep(int(prompt.split()[1]) / 1000)
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    w, h, n = job["width"], job["height"], job["num_frames"]
    shade = job["seed"] % 256
    (out / "frames.rgb").write_bytes(bytes([shade, 255 - shade, 128]) * (w * h * n))
    result = {"type": "result", "id": job_id, "frames": {"path": str(out / "frames.rgb"), "width": w, "height": h,
                                                           "count": n}, "audio": None, "timings": {}}
    if job["audio"]:
        samples = int(48000 * n / job["fps"])
        tone = b"".join(struct.pack("<ff", v, v) for v in (0.3 * math.sin(i * 0.05) for i in range(samples)))
        (out / "audio.f32").write_bytes(tone)
        result["audio"] = {"path": str(out / "audio.f32"), "sample_rate": 48000, "channels": 2}
    if prompt.startswith("hold "):
        log(f"held {began:.6f} {time.time():.6f}")
    log(f"finished {job_id}")
    send(result)


threading.Thread(target=reader, daemon=True).start()
while True:
    with ready:
        while not jobs:
            ready.wait()
        job = jobs.pop(0)
    if job["type"] == "shutdown":
        break
    run(job)
