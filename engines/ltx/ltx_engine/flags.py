"""The engine's command-line flags, shared by the engine process and the benchmark that starts
it (kept apart from the protocol module, which takes over stdout)."""

import argparse

ENGINE_FLAGS = ("checkpoint", "gemma", "spatial_upsampler", "distilled_lora", "pipeline", "device",
                "transformer_cache_bytes", "dev_steps", "gpu_memory_gib", "plan_size")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """The engine's flags (ENGINE_FLAGS), shared with the benchmark that starts it."""
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--gemma", required=True)
    p.add_argument("--spatial-upsampler", required=True)
    p.add_argument("--distilled-lora")
    p.add_argument("--pipeline", default="distilled", choices=["distilled", "dev"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    # The name is kept for the worker that passes it; there is one transformer now (LoRA sets are
    # swapped in place), and this is the budget for LoRA files cached in CPU memory.
    p.add_argument("--transformer-cache-bytes", type=int, default=48 << 30,
                   help="bytes of LoRA files kept in CPU memory (the transformer itself is never duplicated)")
    p.add_argument("--dev-steps", type=int, default=None, help="stage-1 steps of the dev pipeline (default 30)")
    # The memory plan (plan.py), made at start-up from the files' headers before anything is loaded.
    p.add_argument("--fp8", action="store_true", help="cast the transformer to fp8 (ltx-core's fp8_cast)")
    p.add_argument("--gpu-memory-gib", type=float, default=None,
                   help="plan for this much GPU memory instead of the device's total")
    # The largest clip the API accepts (1080p rendered at 1920x1088, 20 s): no job can outgrow the plan.
    p.add_argument("--plan-size", default="1920x1088x481",
                   help="WIDTHxHEIGHTxFRAMES: the largest clip the start-up plan must fit")


def engine_argv(args: argparse.Namespace) -> list[str]:
    """The command line that gives an engine these settings."""
    argv = []
    for name in ENGINE_FLAGS:
        value = getattr(args, name)
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    if getattr(args, "fp8", False):
        argv.append("--fp8")
    return argv
