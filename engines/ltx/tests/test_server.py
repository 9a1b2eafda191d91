"""The engine process over its protocol, on the tiny model: a size the model cannot make is an
`invalid_input` error (not an engine failure), the engine goes on serving, and it reports the
style set it holds, keyed as the scheduler keys it."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from importlib import metadata
from pathlib import Path
from unittest import mock

from ltx_engine import server

from . import tiny_engine


class EngineProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        paths = tiny_engine.paths()
        cls.process = subprocess.Popen(
            [sys.executable, "-m", "ltx_engine.server", "--checkpoint", paths.checkpoint, "--gemma", paths.gemma,
             "--spatial-upsampler", paths.spatial_upsampler, "--device", "cpu"],
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

    def run_job(self, job_id: str, **fields) -> dict:
        job = {"type": "generate", "id": job_id, "prompt": "a lighthouse", "seed": 1, "width": 128, "height": 128,
               "num_frames": 9, "fps": 24, "images": [], "loras": [], "audio": False,
               "out_dir": f"{self.scratch.name}/{job_id}", **fields}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        while True:
            event = self.next_event()
            if event["type"] in ("result", "error") and event.get("id") == job_id:
                return event

    def test_hello_says_no_style_set_is_resident(self):
        self.assertEqual(self.hello["type"], "hello", self.hello)
        self.assertEqual(self.hello["resident_style_set"], "")

    def test_a_size_the_model_cannot_make_is_invalid_input_and_the_engine_goes_on(self):
        event = self.run_job("bad-width", width=100)
        self.assertEqual((event["type"], event["code"]), ("error", "invalid_input"), event)
        self.assertIn("divisible by 64", event["message"])
        event = self.run_job("bad-frames", num_frames=10)
        self.assertEqual((event["type"], event["code"]), ("error", "invalid_input"), event)
        self.assertEqual(self.run_job("good")["type"], "result")

    def test_a_result_reports_the_resident_style_set_by_style_id(self):
        style = tiny_engine.style_a()
        event = self.run_job("styled", loras=[{"path": style, "strength": 0.8, "style_id": "s-1"},
                                              {"path": style, "strength": 0.0, "style_id": "s-2"}])
        self.assertEqual(event["type"], "result", event)
        self.assertEqual(event["resident_style_set"], "s-1@0.8")
        self.assertEqual(self.run_job("plain")["resident_style_set"], "")


class AllocatorSettingTest(unittest.TestCase):
    """Expandable segments are on in the engine, under the variable name the installed torch reads."""

    name = ("PYTORCH_ALLOC_CONF" if tuple(int(p) for p in metadata.version("torch").split(".")[:2]) >= (2, 9)
            else "PYTORCH_CUDA_ALLOC_CONF")

    def settings_after(self, environ: dict) -> dict:
        with mock.patch.dict(os.environ, environ):
            for name in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"):
                if name not in environ:
                    os.environ.pop(name, None)
            server.use_expandable_segments()
            return {k: v for k, v in os.environ.items() if k in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")}

    def test_on_by_default(self):
        self.assertEqual(self.settings_after({}), {self.name: "expandable_segments:True"})

    def test_the_workers_or_an_operators_value_is_kept_under_the_name_torch_reads(self):
        self.assertEqual(self.settings_after({"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:False"}),
                         {self.name: "expandable_segments:False"})


if __name__ == "__main__":
    unittest.main()
