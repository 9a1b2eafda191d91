"""The engine process: loads the models once, says `hello`, then runs one `generate` at a time
until `shutdown` or the end of stdin. A reader thread takes `cancel` while a job runs; the job
stops at its next denoising step, VAE decode chunk or LoRA-swap tensor (a swap cut short puts the
transformer back to its base weights, so the engine stays usable).

    python -m ltx_engine.server --checkpoint F --gemma DIR --spatial-upsampler F
                                [--distilled-lora F] [--pipeline distilled|dev] [--device auto]
"""

import argparse
import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path

from .flags import add_engine_args
from .protocol import PROTOCOL_VERSION, Cancelled, EngineFailure, send


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ltx_engine.server")
    add_engine_args(p)
    return p.parse_args(argv)


class Jobs:
    """What the reader thread hands the main thread, and the id of the running job to cancel."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.running: str | None = None
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()

    def is_cancelled(self, job_id: str) -> bool:
        with self.lock:
            return job_id in self.cancelled


def read_commands(jobs: Jobs) -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            send({"type": "error", "id": None, "code": "engine_error", "message": f"unreadable command: {line[:200]}"})
            continue
        if kind == "cancel":
            with jobs.lock:
                jobs.cancelled.add(str(message.get("id")))
        else:
            jobs.queue.put(message)
    jobs.queue.put({"type": "shutdown"})


def main(argv: list[str]) -> int:
    use_expandable_segments()
    args = parse_args(argv)
    try:
        engine = load(args)
    except Exception as e:  # noqa: BLE001 - any failure to load is reported, then the process ends
        traceback.print_exc()
        send({"type": "error", "id": None, "code": "engine_error", "message": f"could not load the models: {e}"})
        return 2
    jobs = Jobs()
    threading.Thread(target=read_commands, args=(jobs,), daemon=True).start()
    while True:
        message = jobs.queue.get()
        if message.get("type") == "shutdown":
            return 0
        if message.get("type") == "enhance":
            run_enhance(engine, message)
            continue
        if message.get("type") != "generate":
            send({"type": "error", "id": message.get("id"), "code": "engine_error",
                  "message": f"unknown command {message.get('type')!r}"})
            continue
        run_one(engine, jobs, message)


def use_expandable_segments() -> None:
    """Before torch is imported: a 22B model's weights, LoRA swaps and per-size activations
    fragment the CUDA caching allocator; expandable segments let freed blocks be reused. An
    operator's own setting wins. torch 2.9 renamed PYTORCH_CUDA_ALLOC_CONF (the name the worker
    sets, which older torch on a GPU host needs) to PYTORCH_ALLOC_CONF and warns about the old
    one, so the value goes under the name this torch reads."""
    from importlib import metadata

    old, new = "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"
    value = os.environ.get(new) or os.environ.get(old) or "expandable_segments:True"
    try:
        major, minor = (int(part) for part in metadata.version("torch").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        major, minor = 0, 0
    os.environ.pop(old, None)
    os.environ.pop(new, None)
    os.environ[new if (major, minor) >= (2, 9) else old] = value


def load(args: argparse.Namespace):
    import torch

    from . import setup

    device = setup.pick_device(args.device)
    # The memory plan, from the files' headers, before anything is loaded: a configuration that
    # cannot fit is refused here (component and shortfall in GiB), never at the first job.
    from .placement import Placement, plan_at_start

    plan = plan_at_start(args.pipeline, device, args.fp8, args.gpu_memory_gib, args.plan_size,
                         {"checkpoint": args.checkpoint, "gemma": args.gemma,
                          "spatial_upsampler": args.spatial_upsampler, "distilled_lora": args.distilled_lora})
    placement = Placement.from_plan(plan) if plan else Placement(fp8=args.fp8)
    setup.prepare(device, args.gemma)
    from .resident import ModelPaths, ResidentPipeline

    paths = ModelPaths(checkpoint=args.checkpoint, gemma=args.gemma, spatial_upsampler=args.spatial_upsampler,
                       distilled_lora=args.distilled_lora)
    engine = ResidentPipeline(paths, args.pipeline, device, args.transformer_cache_bytes, dev_steps=args.dev_steps,
                              placement=placement)
    send({
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "engine": "ltx",
        "pipeline": args.pipeline,
        "device": str(device),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "ltx_core": setup.package_version("ltx-core"),
                     "ltx_pipelines": setup.package_version("ltx-pipelines")},
        "memory": setup.memory(device),
        "load_seconds": round(engine.load_seconds, 3),
        "plan": plan.to_json() if plan else None,
        "resident_style_set": engine.resident_style_set,
        "presets": list(engine.presets),
    })
    return engine


def run_one(engine, jobs: Jobs, message: dict) -> None:
    from . import outputs

    job_id = str(message.get("id"))

    def check() -> None:
        if jobs.is_cancelled(job_id):
            raise Cancelled()

    def progress(stage: str, step: int, total: int) -> None:
        check()
        send({"type": "progress", "id": job_id, "stage": stage, "step": step, "total": total})

    started = time.monotonic()
    cuda = engine.device.type == "cuda"
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(engine.device)
    try:
        request = parse_request(message)

        def preview(frames) -> None:
            written = outputs.write(Path(message["out_dir"]) / "first-stage", frames, None)
            send({"type": "intermediate", "id": job_id, "frames": written["frames"]})

        frames, audio, timings = engine.generate(request, progress, check,
                                                 preview=preview if message.get("preview") else None)
        if jobs.is_cancelled(job_id):
            raise Cancelled()
        result = outputs.write(Path(message["out_dir"]), frames, audio if message.get("audio", True) else None)
        timings["total"] = time.monotonic() - started
        if cuda:
            result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(engine.device)
        send({"type": "result", "id": job_id, **result, "timings": {k: round(v, 3) for k, v in timings.items()},
              "resident_style_set": engine.resident_style_set, "enhanced_prompt": request.enhanced_prompt})
    except EngineFailure as e:
        send({"type": "error", "id": job_id, "code": e.code, "message": e.message})
    except Exception as e:  # noqa: BLE001 - every failure becomes a typed error
        code, text = classify(e)
        if code == "engine_error":
            traceback.print_exc()
        send({"type": "error", "id": job_id, "code": code, "message": text})
    finally:
        with jobs.lock:
            jobs.cancelled.discard(job_id)


def parse_request(message: dict):
    from ltx_pipelines.utils.args import ImageConditioningInput

    from .modes import Mode
    from .resident import LoraInput, Request

    try:
        return Request(
            prompt=str(message["prompt"]),
            seed=int(message["seed"]),
            width=int(message["width"]),
            height=int(message["height"]),
            num_frames=int(message["num_frames"]),
            fps=int(message["fps"]),
            images=[ImageConditioningInput(str(i["path"]), int(i["frame_idx"]), float(i.get("strength", 1.0)))
                    for i in message.get("images", [])],
            loras=[LoraInput(str(lora["path"]), float(lora["strength"]),
                             None if lora.get("style_id") is None else str(lora["style_id"]))
                   for lora in message.get("loras", [])],
            pipeline=message.get("pipeline"),
            mode=Mode.parse(message.get("mode")),
            quality=None if message.get("quality") is None else str(message["quality"]),
            enhance_prompt=bool(message.get("enhance_prompt", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise EngineFailure("invalid_input", f"malformed generate command: {e}") from e


def run_enhance(engine, message: dict) -> None:
    """`enhance`: the prompt rewritten by the resident Gemma (the official enhancement), no video."""
    job_id = str(message.get("id"))
    try:
        import torch

        with torch.inference_mode():
            prompt = engine.enhance(str(message["prompt"]), message.get("image"), int(message.get("seed", 10)))
        send({"type": "enhanced", "id": job_id, "prompt": prompt})
    except (KeyError, TypeError, ValueError) as e:
        send({"type": "error", "id": job_id, "code": "invalid_input", "message": f"malformed enhance command: {e}"})
    except Exception as e:  # noqa: BLE001 - every failure becomes a typed error
        code, text = classify(e)
        send({"type": "error", "id": job_id, "code": code, "message": text})


def classify(e: Exception) -> tuple[str, str]:
    import torch

    if isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower():
        return "out_of_memory", "the GPU ran out of memory: " + str(e).splitlines()[0][:300]
    if isinstance(e, (FileNotFoundError, PermissionError)):
        return "invalid_input", f"an input file could not be read: {e}"
    return "engine_error", f"{type(e).__name__}: {str(e)[:500]}"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv[1:]))
