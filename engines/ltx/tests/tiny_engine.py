"""Helpers for the tests that run the engine on the tiny model set (scripts/test makes it and sets
LTX_TEST_LTX_MODELS): building an engine, a second style LoRA, and counting what opens which file."""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import safetensors
import torch
from safetensors.torch import save_file

from ltx_engine import setup


def tiny_models() -> Path:
    models = os.environ.get("LTX_TEST_LTX_MODELS")
    if not models:
        raise RuntimeError("LTX_TEST_LTX_MODELS is not set: run the suite with scripts/test")
    return Path(models)


def paths():
    from ltx_engine.resident import ModelPaths

    models = tiny_models()
    return ModelPaths(checkpoint=str(models / "ltx-2.3-tiny-distilled.safetensors"), gemma=str(models / "gemma"),
                      spatial_upsampler=str(models / "ltx-2.3-tiny-spatial-upscaler-x2.safetensors"),
                      distilled_lora=str(models / "ltx-2.3-tiny-distilled-lora.safetensors"))


def engine(pipeline: str = "distilled", **kwargs):
    from ltx_engine.resident import ResidentPipeline

    device = torch.device("cpu")
    setup.prepare(device, str(tiny_models() / "gemma"))
    return ResidentPipeline(paths(), pipeline, device, transformer_cache_bytes=1 << 30, dev_steps=2, **kwargs)


def style_a() -> str:
    return str(tiny_models() / "tiny-style-lora.safetensors")


def another_style(directory: str) -> str:
    """A second style LoRA for the tiny model: the first one's tensor names, other random values."""
    generator = torch.Generator().manual_seed(7)
    with safetensors.safe_open(style_a(), framework="pt") as f:
        tensors = {k: (torch.randn(f.get_slice(k).get_shape(), generator=generator) * 0.2).bfloat16() for k in f.keys()}
    path = str(Path(directory) / "style-b.safetensors")
    save_file(tensors, path)
    return path


@contextlib.contextmanager
def counting_opens():
    """Every safetensors file opened inside (by ltx-core, ltx-pipelines or the engine), in order."""
    opened: list[str] = []
    real = safetensors.safe_open

    def counting(path, *args, **kwargs):
        opened.append(str(Path(path).resolve()))
        return real(path, *args, **kwargs)

    with mock.patch.object(safetensors, "safe_open", counting), \
            mock.patch("ltx_pipelines.utils.constants.safe_open", counting):
        yield opened


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory()


@contextlib.contextmanager
def counting_transformer_builds():
    """Every transformer ltx-core's ModelLedger builds inside (the ledger that built it), in order."""
    from ltx_pipelines.utils import ModelLedger

    builds: list = []
    real = ModelLedger.transformer

    def counting(ledger):
        builds.append(ledger)
        return real(ledger)

    with mock.patch.object(ModelLedger, "transformer", counting):
        yield builds


class EngineProcessCase(unittest.TestCase):
    """Tests that speak the engine protocol to one `ltx_engine.server` process on the tiny model,
    started once for the class (as the Rust worker starts it)."""

    seed = 1

    @classmethod
    def setUpClass(cls):
        models = paths()
        cls.process = subprocess.Popen(
            [sys.executable, "-m", "ltx_engine.server", "--checkpoint", models.checkpoint, "--gemma", models.gemma,
             "--spatial-upsampler", models.spatial_upsampler, "--device", "cpu"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "TQDM_DISABLE": "1"})
        cls.hello = cls.next_event()
        cls.scratch = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.process.stdin.write(json.dumps({"type": "shutdown"}) + "\n")
        cls.process.stdin.close()
        cls.process.wait(timeout=60)
        cls.process.stdout.close()
        cls.scratch.cleanup()

    @classmethod
    def next_event(cls) -> dict:
        line = cls.process.stdout.readline()
        if not line:
            raise AssertionError(f"the engine exited ({cls.process.wait()})")
        return json.loads(line)

    def events_of(self, job_id: str, **fields) -> list:
        """Sends one 128×128×9 generate command; its events other than progress, up to its result
        or error."""
        job = {"type": "generate", "id": job_id, "prompt": "a lighthouse", "seed": self.seed, "width": 128,
               "height": 128, "num_frames": 9, "fps": 24, "images": [], "loras": [], "audio": False,
               "out_dir": f"{self.scratch.name}/{job_id}", **fields}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        events = []
        while True:
            event = self.next_event()
            if event.get("id") == job_id and event["type"] != "progress":
                events.append(event)
            if event["type"] in ("result", "error") and event.get("id") == job_id:
                return events
