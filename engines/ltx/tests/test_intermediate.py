"""`--intermediate-previews` on the tiny model: a generate command with `"preview": true` sends an
`intermediate` event with stage 1's half-size frames before its result; without it, none."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from . import tiny_engine


class IntermediatePreviewTest(unittest.TestCase):
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

    def events_of(self, job_id: str, **fields) -> list:
        job = {"type": "generate", "id": job_id, "prompt": "a lighthouse", "seed": 3, "width": 128, "height": 128,
               "num_frames": 9, "fps": 24, "images": [], "loras": [], "audio": False,
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

    def test_a_preview_of_stage_1_arrives_before_the_result_at_half_size(self):
        events = self.events_of("with-preview", preview=True)
        self.assertEqual([e["type"] for e in events], ["intermediate", "result"], events)
        preview, result = events[0]["frames"], events[1]["frames"]
        self.assertEqual((preview["width"], preview["height"]), (result["width"] // 2, result["height"] // 2))
        self.assertEqual(preview["count"], result["count"])
        self.assertNotEqual(preview["path"], result["path"])
        size = Path(preview["path"]).stat().st_size
        self.assertEqual(size, preview["width"] * preview["height"] * 3 * preview["count"], "raw RGB frames")
        self.assertIn("preview", events[1]["timings"])

        plain = self.events_of("without-preview")
        self.assertEqual([e["type"] for e in plain], ["result"], "not asked for: no preview")
        final_with = Path(result["path"]).read_bytes()
        final_without = Path(plain[0]["frames"]["path"]).read_bytes()
        self.assertEqual(final_with, final_without, "the preview does not change the final clip")


if __name__ == "__main__":
    unittest.main()
