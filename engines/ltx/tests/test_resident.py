"""The resident pipeline on the tiny model (scripts/test makes it and sets LTX_TEST_LTX_MODELS):
a repeated prompt is not encoded again, and a repeated LoRA set does not rebuild a transformer."""

import os
import unittest
from pathlib import Path

import torch

from ltx_engine import setup


def tiny_models() -> Path:
    models = os.environ.get("LTX_TEST_LTX_MODELS")
    if not models:
        raise RuntimeError("LTX_TEST_LTX_MODELS is not set: run the suite with scripts/test")
    return Path(models)


class ResidentPipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        models = tiny_models()
        device = torch.device("cpu")
        setup.prepare(device, str(models / "gemma"))
        from ltx_engine.resident import ModelPaths, ResidentPipeline

        paths = ModelPaths(checkpoint=str(models / "ltx-2.3-tiny-distilled.safetensors"), gemma=str(models / "gemma"),
                           spatial_upsampler=str(models / "ltx-2.3-tiny-spatial-upscaler-x2.safetensors"))
        cls.engine = ResidentPipeline(paths, "distilled", device, transformer_cache_bytes=1 << 30)
        cls.style = str(models / "tiny-style-lora.safetensors")
        encode = cls.engine.text_encoder.encode
        cls.encoded: list[str] = []

        def counting(prompt, *args, **kwargs):
            cls.encoded.append(prompt)
            return encode(prompt, *args, **kwargs)

        cls.engine.text_encoder.encode = counting

    def generate(self, prompt: str, loras=()):
        from ltx_engine.resident import Request

        request = Request(prompt=prompt, seed=1, width=128, height=128, num_frames=9, fps=24, loras=list(loras))
        frames, _, _ = self.engine.generate(request, lambda stage, step, total: None)
        return frames

    def test_a_repeated_prompt_is_encoded_once(self):
        first = self.generate("a prompt seen twice")
        again = self.generate("a prompt seen twice")
        self.assertEqual(self.encoded.count("a prompt seen twice"), 1)
        self.assertTrue(torch.equal(first, again), "the cached encoding gives the same clip")
        self.generate("another prompt")
        self.assertEqual(self.encoded.count("another prompt"), 1)

    def test_a_repeated_lora_set_reuses_its_fused_transformer(self):
        builds = self.engine.transformers.builds
        styled = self.generate("styled", [(self.style, 0.8)])
        self.assertEqual(self.engine.transformers.builds, builds + 1)
        self.assertTrue(torch.equal(self.generate("styled", [(self.style, 0.8)]), styled))
        self.assertEqual(self.engine.transformers.builds, builds + 1, "no rebuild for the same set")
        self.assertFalse(torch.equal(self.generate("styled"), styled), "the LoRA changes the clip")
        self.generate("styled", [(self.style, 0.4)])
        self.assertEqual(self.engine.transformers.builds, builds + 2, "another strength is another set")


if __name__ == "__main__":
    unittest.main()
