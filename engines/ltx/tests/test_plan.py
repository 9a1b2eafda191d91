"""The memory planner: header reading against what ltx-core really loads (tiny model), the full-size
counts against the published files, and the issue's done-when points."""

import io
import json
import os
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import torch
from safetensors import safe_open

from ltx_engine import plan as planner

GIB = 1 << 30


def tiny_models() -> Path:
    models = os.environ.get("LTX_TEST_LTX_MODELS")
    if not models:
        raise RuntimeError("LTX_TEST_LTX_MODELS is not set: run the suite with scripts/test")
    return Path(models)


def tiny_paths() -> dict:
    models = tiny_models()
    return {"checkpoint": str(models / "ltx-2.3-tiny-distilled.safetensors"), "gemma": str(models / "gemma"),
            "spatial_upsampler": str(models / "ltx-2.3-tiny-spatial-upscaler-x2.safetensors"),
            "distilled_lora": str(models / "ltx-2.3-tiny-distilled-lora.safetensors"), "style_loras": []}


def module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


class HeaderReadingTest(unittest.TestCase):
    """Sizes from the headers equal the bytes of the modules ltx-core builds from the same files."""

    @classmethod
    def setUpClass(cls):
        cls.paths = tiny_paths()
        cls.sizes = planner.sizes_from_files(cls.paths["checkpoint"], cls.paths["gemma"],
                                             cls.paths["spatial_upsampler"], cls.paths["distilled_lora"], [])

    def test_header_matches_safetensors(self):
        header = planner.read_safetensors_header(self.paths["checkpoint"])
        with safe_open(self.paths["checkpoint"], framework="pt") as f:
            self.assertEqual(set(header), set(f.keys()))
            for key in list(header)[:50]:
                self.assertEqual(header[key][1], list(f.get_slice(key).get_shape()), key)

    def test_components_match_the_loaded_models(self):
        from ltx_engine import setup

        setup.prepare(torch.device("cpu"), self.paths["gemma"])
        from ltx_pipelines.utils import ModelLedger

        ledger = ModelLedger(dtype=torch.bfloat16, device=torch.device("cpu"), checkpoint_path=self.paths["checkpoint"],
                             gemma_root_path=self.paths["gemma"], spatial_upsampler_path=self.paths["spatial_upsampler"])
        loaded = {
            "transformer": ledger.transformer().velocity_model,
            "text_connectors": ledger.gemma_embeddings_processor(),
            "video_vae_encoder": ledger.video_encoder(),
            "video_vae_decoder": ledger.video_decoder(),
            "audio_vae_decoder": ledger.audio_decoder(),
            "audio_vae_encoder": ledger.audio_encoder(),
            "vocoder": ledger.vocoder(),
            "spatial_upsampler": ledger.spatial_upsampler(),
        }
        for name, module in loaded.items():
            with self.subTest(name):
                self.assertEqual(getattr(self.sizes, name), module_bytes(module))
        from ltx_engine.placement import tie_gemma_head

        text_encoder = ledger.text_encoder()
        untied = sum(p.numel() * p.element_size() for p in text_encoder.parameters())
        tie_gemma_head(text_encoder)
        tied = sum(p.numel() * p.element_size() for p in text_encoder.parameters())  # parameters() dedups
        self.assertLess(tied, untied)  # ltx-core loads lm_head as a copy; the engine drops it
        self.assertEqual(self.sizes.gemma, tied)

    def test_a_nested_gemma_folder_is_counted_as_ltx_core_finds_it(self):
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as root:
            nested = Path(root) / "snapshots" / "abc"
            shutil.copytree(self.paths["gemma"], nested)
            sizes = planner.sizes_from_files(self.paths["checkpoint"], root, self.paths["spatial_upsampler"],
                                             self.paths["distilled_lora"], [])
        self.assertGreater(self.sizes.gemma, 0)
        self.assertEqual(sizes.gemma, self.sizes.gemma)

    def test_full_size_sizes_from_config_match_the_tiny_checkpoint_when_given_its_config(self):
        """The meta-device path and the header path agree on the same model."""
        with safe_open(self.paths["checkpoint"], framework="pt") as f:
            config = json.loads(f.metadata()["config"])
        with safe_open(self.paths["spatial_upsampler"], framework="pt") as f:
            config["upsampler"] = json.loads(f.metadata()["config"])
        from ltx_engine.tiny import gemma_config

        config["gemma"] = gemma_config().to_dict()
        from_config = planner.sizes_from_config(config)
        for name in ("transformer", "transformer_fp8", "lora_touched", "text_connectors", "video_vae_encoder",
                     "video_vae_decoder", "audio_vae_decoder", "audio_vae_encoder", "vocoder", "spatial_upsampler",
                     "gemma"):
            with self.subTest(name):
                self.assertEqual(getattr(from_config, name), getattr(self.sizes, name))

    def test_lora_touched_bytes_are_the_tensors_the_lora_targets(self):
        header = planner.read_safetensors_header(self.paths["distilled_lora"])
        targets = {k.removeprefix("diffusion_model.").removesuffix(".lora_A.weight") for k in header
                   if k.endswith(".lora_A.weight")}
        checkpoint = planner.read_safetensors_header(self.paths["checkpoint"])
        expected = sum(planner.loaded_bytes(*checkpoint[f"model.diffusion_model.{t}.weight"]) for t in targets)
        self.assertEqual(self.sizes.lora_touched, expected)
        self.assertGreater(self.sizes.distilled_lora, 0)

    def test_a_plan_with_paths_reads_the_files(self):
        plan = planner.make_plan("dev", 8 * GIB, False, 128, 128, 9, self.tiny_paths_with_styles())
        self.assertTrue(plan.fits)
        self.assertEqual(plan.source, "headers")
        self.assertEqual(plan.component_bytes("transformer"), self.sizes.transformer)

    def tiny_paths_with_styles(self) -> dict:
        return {**self.paths, "style_loras": [str(tiny_models() / "tiny-style-lora.safetensors")]}


class FullSizeTest(unittest.TestCase):
    """The vendored full-size LTX-2.3 config, on the meta device."""

    @classmethod
    def setUpClass(cls):
        cls.sizes = planner.sizes_from_config(planner.load_full_config())

    def test_about_22b_parameters(self):
        self.assertTrue(22.0e9 < self.sizes.total_parameters < 23.0e9, self.sizes.total_parameters)

    def test_transformer_matches_the_published_file_sizes(self):
        # Published sizes: a third-party MLX split of the v1.1 checkpoint has a 35.38 GiB bf16
        # transformer; the whole bf16 bundle, ltx-2.3-22b-distilled-1.1.safetensors on Lightricks'
        # Hugging Face repository (Lightricks/LTX-2.3), is 46,149,345,334 bytes.
        self.assertAlmostEqual(self.sizes.transformer / GIB, 35.38, delta=0.05)
        bundle = (self.sizes.transformer + self.sizes.text_connectors + self.sizes.video_vae_encoder
                  + self.sizes.video_vae_decoder + self.sizes.audio_vae_decoder + self.sizes.vocoder)
        self.assertAlmostEqual(bundle / 46_149_345_334, 1.0, delta=0.03)

    def test_gemma_12b(self):
        self.assertAlmostEqual(self.sizes.gemma / 2 / 1e9, 12.19, delta=0.01)

    def test_distilled_lora_matches_the_published_rank_384_file(self):
        # ltx-2.3-22b-distilled-lora-384-1.1.safetensors: 7,605,507,256 bytes (§1.4). A rank-384 LoRA
        # over every Linear of the blocks is 6% more: the published one leaves a few Linears out.
        self.assertAlmostEqual(self.sizes.distilled_lora / 7_605_507_256, 1.0, delta=0.08)

    def test_token_counts(self):
        self.assertEqual(planner.video_tokens(1920, 1088, 121), 16 * 34 * 60)
        self.assertEqual(planner.video_tokens(1920, 1088, 121, 64), 16 * 17 * 30)
        self.assertEqual(planner.audio_tokens(121), 127)


class DoneWhenTest(unittest.TestCase):
    """The issue's done-when points, through the command line."""

    def run_plan(self, *argv: str) -> tuple[int, dict]:
        out = io.StringIO()
        with redirect_stdout(out):
            code = planner.main([*argv, "--json"])
        return code, json.loads(out.getvalue())

    def test_dev_on_80_gib_fits_with_one_transformer(self):
        code, plan = self.run_plan("--pipeline", "dev", "--gpu-memory-gib", "80")
        self.assertEqual(code, 0)
        self.assertTrue(plan["fits"])
        self.assertEqual(set(plan) >= {"pipeline", "gpu_memory_bytes", "fp8", "components", "peak_bytes", "fits"},
                         True)
        transformer = next(c for c in plan["components"] if c["name"] == "transformer")
        self.assertEqual(transformer["placement"], "gpu")
        self.assertEqual([c["name"] for c in plan["components"]].count("transformer"), 1)
        # Less than a second transformer would take — except for 8 keyframes' guiding latents,
        # which at this size add half again stage 2's tokens (~0.4 GiB over that line).
        standard = max(v for k, v in plan["phases"].items() if not k.startswith("keyframes"))
        self.assertLess(standard, 2 * transformer["bytes"])
        self.assertLess(plan["peak_bytes"], 2 * transformer["bytes"] + GIB)
        self.assertTrue(all(c["placement"] in ("gpu", "cpu") for c in plan["components"]))

    def test_fp8_cuts_the_transformer_by_at_least_40_percent(self):
        _, bf16 = self.run_plan("--pipeline", "dev", "--gpu-memory-gib", "80")
        _, fp8 = self.run_plan("--pipeline", "dev", "--gpu-memory-gib", "80", "--fp8")

        def transformer(plan):
            return next(c["bytes"] for c in plan["components"] if c["name"] == "transformer")

        self.assertTrue(fp8["fp8"])
        self.assertLessEqual(transformer(fp8), 0.6 * transformer(bf16))

    def test_24_gib_in_bf16_does_not_fit_and_says_why(self):
        code, plan = self.run_plan("--pipeline", "distilled", "--gpu-memory-gib", "24")
        self.assertEqual(code, 3)
        self.assertFalse(plan["fits"])
        self.assertGreater(plan["shortfall_bytes"], 0)
        self.assertIn("transformer", plan["reason"])
        self.assertIn("GiB", plan["reason"])

    def test_gemma_waits_on_the_cpu_when_the_gpu_is_short(self):
        sizes = planner.sizes_from_config(planner.load_full_config())
        roomy = planner.make_plan("distilled", 141 * GIB, False, 1280, 768, 121, sizes=sizes)
        self.assertEqual(roomy.placement("gemma"), "gpu")
        # Long 1080p clips on an 80 GB card: the activations need the room Gemma takes between prompts.
        short = planner.make_plan("distilled", 80 * GIB, False, 1920, 1088, 481, sizes=sizes)
        self.assertEqual(short.placement("gemma"), "cpu")
        self.assertTrue(short.fits)
        self.assertFalse(short.fp8)

    def test_fp8_is_chosen_when_it_is_the_only_way_to_fit(self):
        sizes = planner.sizes_from_config(planner.load_full_config())
        plan = planner.make_plan("distilled", 64 * GIB, False, 1280, 768, 121, sizes=sizes)
        self.assertTrue(plan.fits)
        self.assertTrue(plan.fp8 and plan.fp8_forced)


if __name__ == "__main__":
    unittest.main()


class ModesPlanTest(unittest.TestCase):
    """Every engine serves every mode, so its plan covers each one's extra needs: keyframes' guiding
    latents in the sequence, retake's video encode (tiled) and the audio encode of audio-to-video
    and retake, and on the dev weights the `best` preset's res_2s state."""

    @classmethod
    def setUpClass(cls):
        cls.sizes = planner.sizes_from_config(planner.load_full_config())

    def plan(self, pipeline: str, width=1280, height=768, num_frames=121, gib=141):
        return planner.make_plan(pipeline, gib * GIB, False, width, height, num_frames, sizes=self.sizes)

    def test_each_mode_has_its_phase_and_the_peak_covers_them(self):
        for pipeline, best in (("distilled", False), ("dev", True)):
            plan = self.plan(pipeline)
            with self.subTest(pipeline):
                self.assertLessEqual({"keyframes_stage_1", "keyframes_stage_2", "encode_video", "encode_audio"},
                                     set(plan.phases))
                self.assertEqual("best_stage_2" in plan.phases, best, "best runs on the dev weights only")
                self.assertEqual(plan.peak_bytes, max(plan.phases.values()))
                self.assertEqual(plan.placement("audio_vae_encoder"), "gpu")
                self.assertGreater(plan.component_bytes("audio_vae_encoder"), 0)

    def test_keyframes_add_a_latent_frame_of_tokens_per_image(self):
        plan = self.plan("distilled")
        tokens = planner.MAX_KEYFRAMES * (768 // 32) * (1280 // 32)
        per_token = (self.sizes.video_width * 2 * planner.ACTIVATION_WIDTHS + 128 * 4 * 6)
        self.assertEqual(plan.phases["keyframes_stage_2"] - plan.phases["stage_2"], tokens * per_token)

    def test_the_retake_encode_needs_a_tile_not_the_clip(self):
        short = self.plan("distilled", 1920, 1088, 121)
        long = self.plan("distilled", 1920, 1088, 481)
        resident = short.phases["encode_video"] - planner.encode_bytes(1920, 1088, 121)
        self.assertLess(long.phases["encode_video"] - short.phases["encode_video"], GIB // 4)
        self.assertLess(long.phases["encode_video"] - resident, 4 * GIB)

    def test_long_1080p_keyframes_still_fit_an_h100_with_gemma_waiting_on_the_cpu(self):
        plan = self.plan("distilled", 1920, 1088, 481, gib=80)
        self.assertTrue(plan.fits)
        self.assertFalse(plan.fp8)
        self.assertEqual(max(plan.phases, key=plan.phases.get), "keyframes_stage_2")
        self.assertEqual(plan.placement("gemma"), "cpu")


class StartUpRefusalTest(unittest.TestCase):
    """The engine plans from the headers before loading and refuses what cannot fit."""

    def test_plan_at_start_refuses_with_the_component_and_shortfall(self):
        from ltx_engine.placement import plan_at_start

        paths = tiny_paths()
        with self.assertRaises(planner.PlanRefused) as refused:
            plan_at_start("dev", torch.device("cpu"), False, 0.001, "128x128x9", paths)
        self.assertIn("short by", str(refused.exception))
        self.assertIn("GiB", str(refused.exception))
        plan = plan_at_start("dev", torch.device("cpu"), False, 8.0, "128x128x9", paths)
        self.assertTrue(plan.fits)
        self.assertIsNone(plan_at_start("dev", torch.device("cpu"), False, None, "128x128x9", paths))

    def test_the_engine_process_refuses_to_start(self):
        import subprocess
        import sys
        import time

        paths = tiny_paths()
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "ltx_engine.server", "--checkpoint", paths["checkpoint"], "--gemma", paths["gemma"],
             "--spatial-upsampler", paths["spatial_upsampler"], "--device", "cpu", "--gpu-memory-gib", "0.001"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
            cwd=Path(__file__).resolve().parent.parent)
        self.assertEqual(out.returncode, 2, out.stderr[-2000:])
        event = json.loads(out.stdout.splitlines()[0])
        self.assertEqual(event["type"], "error")
        self.assertIn("does not fit this GPU", event["message"])
        self.assertIn("short by", event["message"])
        self.assertLess(time.monotonic() - started, 120)
