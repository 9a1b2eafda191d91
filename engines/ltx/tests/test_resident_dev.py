"""The resident dev pipeline on the tiny model: its second stage is the one base transformer with
the distilled LoRA swapped in (no second transformer is ever built or alive), what only stage 1
needed is freed before stage 2 starts, and a dev job reads no file after start-up."""

import contextlib
import gc
import unittest
import weakref
from pathlib import Path

import torch
from ltx_core.model.transformer import X0Model

from . import tiny_engine
from .test_resident import ltx_core_transformer_weights, weights


def live_transformers() -> weakref.WeakSet:
    # No gc.collect(): a transformer kept only by a reference cycle still holds its memory.
    return weakref.WeakSet(o for o in gc.get_objects() if type(o) is X0Model)


class DevPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = tiny_engine.style_a()
        distilled = tiny_engine.paths().distilled_lora
        # What ltx-core builds for each stage of a dev job with style A (the official two-stage
        # pipeline: stage 1 with the styles, stage 2 with the styles and the distilled LoRA).
        cls.stage_1_a = ltx_core_transformer_weights([(cls.a, 0.8)])
        cls.stage_2_a = ltx_core_transformer_weights([(cls.a, 0.8), (distilled, 1.0)])
        gc.collect()

        # Transformers of other test classes' engines, alive in this process: not counted.
        gc.collect()
        cls.others = live_transformers()
        cls.stack = contextlib.ExitStack()
        cls.opened = cls.stack.enter_context(tiny_engine.counting_opens())
        cls.transformer_builds = cls.stack.enter_context(tiny_engine.counting_transformer_builds())
        cls.engine = tiny_engine.engine("dev")
        cls.opened_at_start = len(cls.opened)

        # Instruments the denoising of each stage: what stage 1's denoising function still is
        # when stage 2 starts, how many transformers are alive, and the weights each stage runs.
        cls.stages: list[dict] = []
        real_denoise = cls.engine._denoise

        def denoise(shape, conditionings, noiser, sigmas, denoise_fn, stage, progress, **initial):
            earlier = [s["denoise_fn"]() for s in cls.stages]
            cls.stages.append({"stage": stage, "denoise_fn": weakref.ref(denoise_fn), "earlier_alive": earlier,
                               "transformers": len(set(live_transformers()) - set(cls.others)),
                               "transformer": id(cls.engine.transformer),
                               "weights": weights(cls.engine.transformer)})
            return real_denoise(shape, conditionings, noiser, sigmas, denoise_fn, stage, progress, **initial)

        cls.engine._denoise = denoise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def generate(self, loras=()):
        from ltx_engine.resident import Request

        self.stages.clear()
        request = Request(prompt="dev", seed=3, width=128, height=128, num_frames=9, fps=24, loras=list(loras))
        frames, _, _ = self.engine.generate(request, lambda stage, step, total: None)
        return frames

    def test_stage_2_is_the_same_transformer_with_the_distilled_lora_swapped_in(self):
        self.generate([(self.a, 0.8)])
        stage_1, stage_2 = self.stages
        self.assertEqual((stage_1["stage"], stage_2["stage"]), ("sampling", "refining"))
        self.assertEqual(stage_1["transformer"], stage_2["transformer"])
        self.assertEqual([s["transformers"] for s in self.stages], [1, 1], "never a second transformer alive")
        for key in self.stage_1_a:
            self.assertTrue(torch.equal(stage_1["weights"][key], self.stage_1_a[key]), key)
            self.assertTrue(torch.equal(stage_2["weights"][key], self.stage_2_a[key]), key)
        for key, value in weights(self.engine.transformer).items():
            self.assertTrue(torch.equal(value, self.stage_1_a[key]), f"{key}: the distilled LoRA is undone after")
        self.assertEqual(self.engine.resident_style_set, f"{self.a}@0.8")

    def test_what_only_stage_1_used_is_freed_before_stage_2(self):
        self.generate()
        stage_1, stage_2 = self.stages
        self.assertEqual(stage_2["earlier_alive"], [None], "stage 1's denoising function (and the guiders and "
                                                          "contexts it holds) is gone when stage 2 starts")

    def test_z_a_dev_job_reads_no_file_after_start_up(self):
        # Named to run last: every job of the class so far, then two more.
        self.generate()
        self.generate([(self.a, 0.8)])
        checkpoint = str(Path(tiny_engine.paths().checkpoint).resolve())
        self.assertEqual(len(self.transformer_builds), 1)
        self.assertEqual(self.opened.count(checkpoint), 1)
        self.assertEqual(self.opened[self.opened_at_start:], [str(Path(self.a).resolve())],
                         "only the style file, once, on its first use")


if __name__ == "__main__":
    unittest.main()
