"""The additive modes and quality presets on the tiny model (CPU), run by the resident engine with
the official pipelines' conditioning: keyframes as guiding latents at their frames, audio-to-video
with the input audio encoded once and held frozen (its waveform returned as it came), retake with
the latents outside the span kept exactly, the presets' samplers and LoRA strengths, and the
official prompt enhancement on the resident Gemma."""

import subprocess
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import torch
from PIL import Image
from ltx_core.model.video_vae import TilingConfig
from ltx_pipelines.utils.args import ImageConditioningInput

from ltx_engine import resident
from ltx_engine.modes import Mode, load_audio, load_video_on_canvas
from ltx_engine.protocol import EngineFailure
from ltx_engine.resident import Request

from . import tiny_engine

SIZE = 128


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_inputs(directory: Path) -> dict[str, str]:
    """Two keyframe images, two tones (mono 44.1 kHz, stereo 48 kHz) and a 49-frame clip with audio."""
    files = {"red": directory / "red.png", "blue": directory / "blue.png", "tone": directory / "tone.wav",
             "other_tone": directory / "other.wav", "clip": directory / "clip.mp4"}
    Image.new("RGB", (SIZE, SIZE), (230, 20, 20)).save(files["red"])
    Image.new("RGB", (SIZE, SIZE), (20, 20, 230)).save(files["blue"])
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-ac", "1", "-ar", "44100", str(files["tone"]))
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=duration=1:seed=3", "-ac", "2", "-ar", "48000", str(files["other_tone"]))
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={SIZE}x{SIZE}:rate=24", "-f", "lavfi", "-i",
           "sine=frequency=300:duration=3", "-frames:v", "49", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", str(files["clip"]))
    return {k: str(v) for k, v in files.items()}


def request(num_frames: int = 9, **fields) -> Request:
    return Request(prompt="a lighthouse at dusk", seed=5, width=SIZE, height=SIZE, num_frames=num_frames, fps=24,
                   **fields)


def quiet(stage, step, total) -> None:
    pass


class ModesCase(unittest.TestCase):
    pipeline = "distilled"

    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.TemporaryDirectory()
        cls.files = make_inputs(Path(cls.scratch.name))
        cls.engine = tiny_engine.engine(cls.pipeline)

    @classmethod
    def tearDownClass(cls):
        del cls.engine
        cls.scratch.cleanup()

    def generate(self, req: Request):
        return self.engine.generate(req, quiet)

    def keyframes(self, *names_and_frames) -> Mode:
        return Mode("keyframes", keyframes=[ImageConditioningInput(self.files[n], f, 1.0) for n, f in names_and_frames])


class DistilledModesTest(ModesCase):
    def test_keyframes_are_guiding_latents_at_their_frames_in_both_stages(self):
        real = resident.image_conditionings_by_adding_guiding_latent
        with mock.patch.object(resident, "image_conditionings_by_adding_guiding_latent", wraps=real) as built:
            frames, audio, _ = self.generate(request(17, mode=self.keyframes(("red", 0), ("blue", 16))))
        self.assertEqual(tuple(frames.shape), (17, SIZE, SIZE, 3))
        self.assertIsNotNone(audio)
        sizes = [(c.kwargs["width"], [i.frame_idx for i in c.kwargs["images"]]) for c in built.call_args_list]
        self.assertEqual(sizes, [(SIZE // 2, [0, 16]), (SIZE, [0, 16])], "stage 1 at half size, stage 2 at full")
        other, _, _ = self.generate(request(17, mode=self.keyframes(("blue", 0), ("red", 16))))
        self.assertFalse(torch.equal(frames, other), "the keyframes condition the clip")

    def test_keyframes_out_of_the_clip_or_unordered_are_invalid_input(self):
        for mode in (self.keyframes(("red", 0), ("blue", 9)), self.keyframes(("red", 8), ("blue", 0)),
                     self.keyframes(("red", 0))):
            with self.assertRaises(EngineFailure) as refused:
                self.generate(request(9, mode=mode))
            self.assertEqual(refused.exception.code, "invalid_input")

    def test_audio_to_video_holds_the_encoded_audio_and_returns_the_input_waveform(self):
        real = resident.denoise_video_only
        with mock.patch.object(resident, "denoise_video_only", wraps=real) as video_only:
            frames, audio, _ = self.generate(request(9, mode=Mode("audio_to_video", audio=self.files["tone"])))
        self.assertEqual(tuple(frames.shape), (9, SIZE, SIZE, 3))
        held = [c.kwargs["initial_audio_latent"] for c in video_only.call_args_list]
        self.assertEqual(len(held), 2, "both stages denoise the video only")
        self.assertTrue(torch.equal(held[0], held[1]), "the same encoded audio in both stages")
        source = load_audio(self.files["tone"], 9 / 24, torch.device("cpu"))
        self.assertEqual(audio.sampling_rate, 44100)
        self.assertTrue(torch.equal(audio.waveform, source.waveform), "the input's samples, untouched")
        self.assertEqual(audio.waveform.shape[-1], round(9 / 24 * 44100))
        other, _, _ = self.generate(request(9, mode=Mode("audio_to_video", audio=self.files["other_tone"])))
        self.assertFalse(torch.equal(frames, other), "the audio conditions the video")

    def test_audio_to_video_of_a_file_without_audio_is_invalid_input(self):
        with self.assertRaises(EngineFailure) as refused:
            self.generate(request(9, mode=Mode("audio_to_video", audio=self.files["red"])))
        self.assertEqual(refused.exception.code, "invalid_input")

    def retake(self, start: int, end: int, **flags):
        latents = []
        real = self.engine._decode_video

        def decode(latent, *args):
            latents.append(latent.clone())
            return real(latent, *args)

        mode = Mode("retake", video=self.files["clip"], start_frame=start, end_frame=end, **flags)
        with mock.patch.object(self.engine, "_decode_video", decode):
            frames, audio, _ = self.generate(request(49, mode=mode))
        return frames, audio, latents[0]

    def test_retake_keeps_the_latents_outside_the_span_exactly_and_regenerates_those_inside(self):
        with torch.inference_mode():
            pixels = load_video_on_canvas(self.files["clip"], SIZE, SIZE, 49, self.engine.dtype, self.engine.device)
            encoded = self.engine.video_encoder.tiled_encode(pixels, TilingConfig.default())
            round_trip = self.engine._decode_video(encoded, 49, torch.Generator().manual_seed(5), quiet).float()
        # Frames 41..48 are latent frame 6 (latent 0 is frame 0, latent k frames 8k-7..8k).
        frames, audio, latent = self.retake(41, 49)
        self.assertEqual(tuple(frames.shape), (49, SIZE, SIZE, 3))
        self.assertIsNotNone(audio)
        changed = (latent - encoded).abs().amax(dim=(0, 1, 3, 4))
        self.assertEqual(changed[:6].tolist(), [0.0] * 6, "latents outside the span are the input's, exactly")
        self.assertGreater(changed[6].item(), 0.1, "the span's latent is regenerated")
        # In pixels the kept frames are the VAE round trip of the input, except where the decoder's
        # temporal reach sees the regenerated latent (on the tiny random VAE it spreads, fading
        # with distance: measured ≤ 2/255 on frames 0-2, ~200/255 inside the span).
        error = (frames.float() - round_trip).abs().amax(dim=(1, 2, 3))
        self.assertLess(error[:8].mean().item(), error[41:].mean().item() / 4)
        kept, _, _ = self.retake(41, 49, regenerate_video=False)
        self.assertTrue(torch.equal(kept.float(), round_trip), "regenerate_video=false: the round trip, exactly")

    def test_a_retake_span_outside_the_clip_is_invalid_input(self):
        with self.assertRaises(EngineFailure) as refused:
            self.generate(request(9, mode=Mode("retake", video=self.files["clip"], start_frame=5, end_frame=10)))
        self.assertEqual(refused.exception.code, "invalid_input")

    def test_a_preset_whose_weights_are_not_loaded_is_refused(self):
        self.assertEqual(self.engine.presets, ("fast",))
        with self.assertRaises(EngineFailure) as refused:
            self.generate(request(9, quality="best"))
        self.assertEqual(refused.exception.code, "invalid_input")
        self.assertIn("best", refused.exception.message)

    def test_an_enhanced_prompt_is_what_the_model_is_given(self):
        encoded = []
        real = self.engine.encode_prompt

        def encode(prompt):
            encoded.append(prompt)
            return real(prompt)

        req = request(9, enhance_prompt=True)
        with mock.patch.object(self.engine, "encode_prompt", encode):
            self.generate(req)
        self.assertIsInstance(req.enhanced_prompt, str)
        self.assertNotEqual(req.enhanced_prompt, req.prompt)
        self.assertEqual(encoded, [req.enhanced_prompt])
        plain = request(9)
        self.generate(plain)
        self.assertIsNone(plain.enhanced_prompt)
        with_image = self.engine.enhance("a red square", self.files["red"], seed=42)
        self.assertIsInstance(with_image, str, "the i2v system prompt with an image")


class DevPresetsTest(ModesCase):
    pipeline = "dev"

    def applied_sets(self, req: Request):
        """The LoRA sets applied during the job, and which denoising loops ran."""
        sets, loops = [], []
        real_apply = self.engine.loras.apply

        def apply(refs, check=lambda: None):
            sets.append(tuple((r.id, r.strength) for r in refs))
            return real_apply(refs, check)

        real_res2s, real_euler = resident.res2s_audio_video_denoising_loop, resident.euler_denoising_loop
        with mock.patch.object(self.engine.loras, "apply", apply), \
                mock.patch.object(resident, "res2s_audio_video_denoising_loop",
                                  lambda **kw: loops.append("res2s") or real_res2s(**kw)), \
                mock.patch.object(resident, "euler_denoising_loop",
                                  lambda **kw: loops.append("euler") or real_euler(**kw)):
            frames, audio, _ = self.generate(req)
        self.assertEqual(tuple(frames.shape), (req.num_frames, SIZE, SIZE, 3))
        self.assertIsNotNone(audio)
        return sets, loops

    def test_balanced_is_the_dev_two_stage_pipeline(self):
        self.assertEqual(self.engine.presets, ("balanced", "best"))
        sets, loops = self.applied_sets(request(9, quality="balanced"))
        self.assertEqual(sets, [(), (("distilled", 1.0),), ()])
        self.assertEqual(loops, ["euler", "euler"])

    def test_best_is_the_hq_pipeline_res_2s_with_the_distilled_lora_at_a_quarter_then_a_half(self):
        sets, loops = self.applied_sets(request(9, quality="best"))
        self.assertEqual(sets, [(("distilled", 0.25),), (("distilled", 0.5),), ()])
        self.assertEqual(loops, ["res2s", "res2s"])
        self.assertEqual(self.engine.resident_style_set, "", "back to the plain model after the job")

    def test_each_mode_runs_on_each_dev_preset(self):
        modes = {"keyframes": (9, self.keyframes(("red", 0), ("blue", 8))),
                 "audio_to_video": (9, Mode("audio_to_video", audio=self.files["tone"])),
                 "retake": (17, Mode("retake", video=self.files["clip"], start_frame=9, end_frame=17))}
        for quality in ("balanced", "best"):
            for name, (num_frames, mode) in modes.items():
                with self.subTest(quality=quality, mode=name):
                    sets, loops = self.applied_sets(request(num_frames, mode=mode, quality=quality))
                    if name == "retake":
                        self.assertEqual((sets, loops), ([(), ()], ["euler"]), "one dev stage, as the official retake")


if __name__ == "__main__":
    unittest.main()
