"""The engine's command-line flags, shared by the engine process and the benchmark that starts
it (kept apart from the protocol module, which takes over stdout)."""

import argparse

ENGINE_FLAGS = ("checkpoint", "gemma", "spatial_upsampler", "distilled_lora", "pipeline", "device",
                "transformer_cache_bytes", "dev_steps")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """The engine's flags (ENGINE_FLAGS), shared with the benchmark that starts it."""
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--gemma", required=True)
    p.add_argument("--spatial-upsampler", required=True)
    p.add_argument("--distilled-lora")
    p.add_argument("--pipeline", default="distilled", choices=["distilled", "dev"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--transformer-cache-bytes", type=int, default=48 << 30)
    p.add_argument("--dev-steps", type=int, default=None, help="stage-1 steps of the dev pipeline (default 30)")


def engine_argv(args: argparse.Namespace) -> list[str]:
    """The command line that gives an engine these settings."""
    argv = []
    for name in ENGINE_FLAGS:
        value = getattr(args, name)
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv
