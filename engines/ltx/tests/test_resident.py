"""The resident distilled pipeline on the tiny model: one transformer built from one opening of the
checkpoint, style sets swapped in place (A, then B, then A again renders what a fresh engine
renders for A), the set's order irrelevant, a cancel during a swap harmless, prompts encoded once."""

import contextlib
import unittest
from pathlib import Path

import torch
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_pipelines.utils import ModelLedger

from ltx_engine import resident
from ltx_engine.protocol import Cancelled

from . import tiny_engine


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def ltx_core_transformer_weights(loras: list[tuple[str, float]]) -> dict[str, torch.Tensor]:
    """The transformer `ModelLedger.with_loras(...)` builds from the file with these LoRAs fused."""
    paths = tiny_engine.paths()
    cpu = torch.device("cpu")
    ledger = ModelLedger(dtype=resident.compute_dtype(cpu), device=cpu, checkpoint_path=paths.checkpoint)
    specs = tuple(LoraPathStrengthAndSDOps(path, s, LTXV_LORA_COMFY_RENAMING_MAP) for path, s in loras)
    return weights(ledger.with_loras(specs).transformer())


class ResidentPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scratch = tiny_engine.scratch_dir()
        cls.a = tiny_engine.style_a()
        cls.b = tiny_engine.another_style(cls.scratch.name)
        # What the engine must match, made before anything is counted.
        fresh = tiny_engine.engine()
        cls.fresh_a = cls.render(fresh, "styled", [(cls.a, 0.8)])
        del fresh
        cls.fused_ab = ltx_core_transformer_weights([(cls.b, 0.3), (cls.a, 0.5)])  # the key's order: b < tiny

        cls.stack = contextlib.ExitStack()
        cls.opened = cls.stack.enter_context(tiny_engine.counting_opens())
        cls.transformer_builds = cls.stack.enter_context(tiny_engine.counting_transformer_builds())
        cls.engine = tiny_engine.engine()
        cls.opened_at_start = list(cls.opened)
        cls.base = weights(cls.engine.transformer)
        encode = cls.engine.text_encoder.encode
        cls.encoded: list[str] = []

        def counting(prompt, *args, **kwargs):
            cls.encoded.append(prompt)
            return encode(prompt, *args, **kwargs)

        cls.engine.text_encoder.encode = counting

    @classmethod
    def tearDownClass(cls):
        del cls.engine
        cls.stack.close()
        cls.scratch.cleanup()

    @staticmethod
    def render(engine, prompt: str, loras=(), check=lambda: None):
        from ltx_engine.resident import Request

        request = Request(prompt=prompt, seed=1, width=128, height=128, num_frames=9, fps=24, loras=list(loras))
        frames, _, _ = engine.generate(request, lambda stage, step, total: None, check)
        return frames

    def generate(self, prompt: str, loras=(), check=lambda: None):
        return self.render(self.engine, prompt, loras, check)

    def test_a_repeated_prompt_is_encoded_once_and_cached_on_the_cpu(self):
        first = self.generate("a prompt seen twice")
        again = self.generate("a prompt seen twice")
        self.assertEqual(self.encoded.count("a prompt seen twice"), 1)
        self.assertTrue(torch.equal(first, again), "the cached encoding gives the same clip")
        self.generate("another prompt")
        self.assertEqual(self.encoded.count("another prompt"), 1)
        for entry in self.engine.prompts.values():
            self.assertTrue(all(t is None or t.device.type == "cpu" for t in entry))

    def test_styles_a_then_b_then_a_render_what_a_fresh_engine_renders_for_a(self):
        first_a = self.generate("styled", [(self.a, 0.8)])
        self.assertEqual(self.engine.resident_style_set, f"{self.a}@0.8")
        b = self.generate("styled", [(self.b, 0.8)])
        self.assertFalse(torch.equal(b, first_a), "another style changes the clip")
        self.assertFalse(torch.equal(self.generate("styled"), first_a), "the style changes the clip")
        self.assertEqual(self.engine.resident_style_set, "")
        again_a = self.generate("styled", [(self.a, 0.8)])
        self.assertTrue(torch.equal(first_a, self.fresh_a))
        self.assertTrue(torch.equal(again_a, self.fresh_a))

    def test_a_swapped_in_set_is_ltx_cores_own_fusion(self):
        self.generate("fused", [(self.a, 0.5), (self.b, 0.3)])
        swapped = weights(self.engine.transformer)
        self.assertEqual(swapped.keys(), self.fused_ab.keys())
        for key, value in swapped.items():
            self.assertTrue(torch.equal(value, self.fused_ab[key]), key)
        self.generate("fused")
        for key, value in weights(self.engine.transformer).items():
            self.assertTrue(torch.equal(value, self.base[key]), f"{key} is back to the base")

    def test_the_order_zeros_and_duplicates_of_styles_change_neither_the_clip_nor_the_key(self):
        ab = self.generate("order", [(self.a, 0.5), (self.b, 0.3)])
        key = self.engine.resident_style_set
        swaps = self.engine.loras.swaps
        self.assertTrue(torch.equal(self.generate("order", [(self.b, 0.3), (self.a, 0.5)]), ab))
        self.assertEqual(self.engine.resident_style_set, key)
        self.assertTrue(torch.equal(self.generate("order", [(self.b, 0.3), (self.a, 0.25), (self.a, 0.25)]), ab))
        self.assertEqual(self.engine.loras.swaps, swaps, "the same set is not swapped in again")
        a = self.generate("order", [(self.a, 0.5), (self.b, 0.0)])
        self.assertEqual(self.engine.resident_style_set, f"{self.a}@0.5")
        self.assertTrue(torch.equal(self.generate("order", [(self.a, 0.5)]), a))

    def test_a_style_id_names_the_set_instead_of_the_path(self):
        from ltx_engine.resident import LoraInput

        self.generate("ids", [LoraInput(self.b, 1.0, "style-b"), LoraInput(self.a, 0.5, "style-a")])
        self.assertEqual(self.engine.resident_style_set, "style-a@0.5,style-b@1")

    def test_a_cancel_during_a_swap_leaves_the_base_model_and_a_healthy_engine(self):
        self.generate("cancel", [(self.b, 0.8)])
        calls = []

        def cancel_midway():
            calls.append(1)
            if len(calls) == 5:
                raise Cancelled()

        with self.assertRaises(Cancelled):
            self.generate("styled", [(self.a, 0.8)], cancel_midway)
        self.assertEqual(self.engine.resident_style_set, "")
        for key, value in weights(self.engine.transformer).items():
            self.assertTrue(torch.equal(value, self.base[key]), f"{key} is back to the base")
        self.assertTrue(torch.equal(self.generate("styled", [(self.a, 0.8)]), self.fresh_a))

    def test_a_cancel_is_seen_between_decoded_chunks(self):
        from ltx_engine.resident import Request

        stages = []

        def progress(stage, step, total):
            stages.append((stage, step, total))
            if stage == "decoding" and step == total:
                raise Cancelled()

        request = Request(prompt="decode", seed=1, width=128, height=128, num_frames=9, fps=24)
        with self.assertRaises(Cancelled):
            self.engine.generate(request, progress)
        self.assertEqual(stages[-2:], [("decoding", 0, 1), ("decoding", 1, 1)], "checked after the chunk")
        self.assertEqual(self.generate("decode").shape, (9, 128, 128, 3))

    def test_z_one_transformer_and_one_opening_of_the_checkpoint_in_the_engines_life(self):
        # Named to run last in the class, after every other test's jobs and style switches.
        self.generate("last", [(self.b, 0.4)])
        self.generate("last", [(self.a, 0.4)])
        checkpoint = str(Path(tiny_engine.paths().checkpoint).resolve())
        self.assertEqual(len(self.transformer_builds), 1)
        self.assertEqual(self.opened.count(checkpoint), 1, self.opened)
        after_start = self.opened[len(self.opened_at_start):]
        self.assertEqual(sorted(after_start), sorted({str(Path(p).resolve()) for p in (self.a, self.b)}),
                         "after start-up only style files are read, each once")


if __name__ == "__main__":
    unittest.main()
