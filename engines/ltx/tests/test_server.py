"""The engine process over its protocol, on the tiny model: a size the model cannot make is an
`invalid_input` error (not an engine failure), the engine goes on serving, and it reports the
style set it holds, keyed as the scheduler keys it."""

import os
import unittest
from importlib import metadata
from unittest import mock

from ltx_engine import server

from . import tiny_engine


class EngineProcessTest(tiny_engine.EngineProcessCase):
    def run_job(self, job_id: str, **fields) -> dict:
        return self.events_of(job_id, **fields)[-1]

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

    def test_hello_lists_the_presets_the_loaded_weights_run(self):
        self.assertEqual((self.hello["protocol"], self.hello["presets"]), (2, ["fast"]))

    def test_a_mode_and_enhancement_travel_in_the_generate_command(self):
        from PIL import Image

        images = []
        for i, colour in enumerate([(200, 0, 0), (0, 0, 200)]):
            path = f"{self.scratch.name}/key{i}.png"
            Image.new("RGB", (128, 128), colour).save(path)
            images.append({"path": path, "frame_idx": 8 * i, "strength": 1.0})
        event = self.run_job("keyed", mode={"kind": "keyframes", "keyframes": images}, quality="fast",
                             enhance_prompt=True)
        self.assertEqual(event["type"], "result", event)
        self.assertEqual(event["frames"]["count"], 9)
        self.assertIsInstance(event["enhanced_prompt"], str)
        self.assertIsNone(self.run_job("plain-prompt")["enhanced_prompt"])
        event = self.run_job("odd-mode", mode={"kind": "extend"})
        self.assertEqual((event["type"], event["code"]), ("error", "invalid_input"), event)
        event = self.run_job("unloaded", quality="best")
        self.assertEqual((event["type"], event["code"]), ("error", "invalid_input"), event)

    def test_enhance_answers_with_the_rewritten_prompt(self):
        self.process.stdin.write('{"type": "enhance", "id": "e1", "prompt": "a fox", "image": null, "seed": 42}\n')
        self.process.stdin.flush()
        event = self.next_event()
        self.assertEqual((event["type"], event["id"]), ("enhanced", "e1"), event)
        self.assertIsInstance(event["prompt"], str)

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
