"""`--intermediate-previews` on the tiny model: a generate command with `"preview": true` sends an
`intermediate` event with stage 1's half-size frames before its result; without it, none."""

import unittest
from pathlib import Path

from . import tiny_engine


class IntermediatePreviewTest(tiny_engine.EngineProcessCase):
    seed = 3

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
