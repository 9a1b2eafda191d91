"""LTX-2.3 pipelines with the models kept resident between requests.

The official 1.0.0 pipelines (`ltx_pipelines.distilled`, `ltx_pipelines.ti2vid_two_stages`,
`ti2vid_two_stages_hq`, `keyframe_interpolation`, `a2vid_two_stage`, `retake`) rebuild every
model from disk on each call. This module runs the same steps — the same
`ltx_core` models, schedules, conditioning, denoising loops and decoders — but builds each model
once, from one opening of the checkpoint at start-up, and caches prompt embeddings by prompt hash
(the 12B text encoder is the expensive part).

There is one transformer, ever. A job's LoRA set (its styles; on the dev pipeline's second stage
also the distilled LoRA) is applied to it as in-place deltas and undone from saved base weights
(`loras.ResidentLoras`), so a style switch or a dev job's second stage reads nothing from disk
and never holds a second ~38 GB transformer.

The additive modes (modes.py) are the official keyframe, audio-to-video and retake pipelines'
conditioning on the same resident models; the quality preset picks the sampler of each stage
(fast: distilled; balanced: dev two-stage; best: the HQ two-stage with res_2s).
"""

import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple
from unittest import mock

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams, create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.model.audio_vae import encode_audio as vae_encode_audio
from ltx_core.model.upsampler import upsample_video
from ltx_core.model.video_vae import TilingConfig, get_video_chunks_number
from ltx_core.model.video_vae import decode_video as vae_decode_video
from ltx_core.tools import VideoLatentShape
from ltx_core.types import Audio, AudioLatentShape, VideoPixelShape
from ltx_pipelines.retake import TemporalRegionMask, _encode_audio_for_retake
from ltx_pipelines.utils import (
    ModelLedger,
    assert_resolution,
    combined_image_conditionings,
    denoise_audio_video,
    euler_denoising_loop,
    multi_modal_guider_factory_denoising_func,
    res2s_audio_video_denoising_loop,
    simple_denoising_func,
)
from ltx_pipelines.utils.args import ImageConditioningInput
from ltx_pipelines.utils.constants import (
    DEFAULT_NEGATIVE_PROMPT,
    DISTILLED_SIGMA_VALUES,
    LTX_2_3_HQ_PARAMS,
    STAGE_2_DISTILLED_SIGMA_VALUES,
)
from ltx_pipelines.utils.helpers import (
    denoise_video_only,
    generate_enhanced_prompt,
    image_conditionings_by_adding_guiding_latent,
    multi_modal_guider_denoising_func,
    noise_audio_state,
    noise_video_state,
)
from ltx_pipelines.utils.types import PipelineComponents

from . import checkpoint
from .loras import LoraFiles, LoraRef, ResidentLoras, normalise, style_set_key
from .modes import (
    DEFAULT_PRESET,
    HQ_DISTILLED_LORA_STAGE_1,
    HQ_DISTILLED_LORA_STAGE_2,
    PRESETS,
    Mode,
    check_mode,
    fit_latent_frames,
    load_audio,
    load_video_on_canvas,
)
from .placement import GemmaOffload, Placement, tie_gemma_head
from .protocol import EngineFailure

PIPELINES = ("distilled", "dev")


@dataclass
class ModelPaths:
    checkpoint: str
    gemma: str
    spatial_upsampler: str
    distilled_lora: str | None = None


class LoraInput(NamedTuple):
    """A LoRA of a request. `style_id` (sent by the worker) names it in the LoRA-set key; without
    one the path does."""

    path: str
    strength: float
    style_id: str | None = None


@dataclass
class Request:
    prompt: str
    seed: int
    width: int
    height: int
    num_frames: int
    fps: int
    images: list[ImageConditioningInput] = field(default_factory=list)
    loras: list[LoraInput] = field(default_factory=list)
    pipeline: str | None = None
    mode: Mode = field(default_factory=Mode)
    # A preset of `PRESETS[pipeline]`; None: the pipeline's own (`DEFAULT_PRESET`).
    quality: str | None = None
    enhance_prompt: bool = False
    # Set by `generate` when enhancement was asked: the prompt the model was given.
    enhanced_prompt: str | None = None


# progress(stage, step, total); raises Cancelled when the job was cancelled.
Progress = Callable[[str, int, int], None]
# check(); raises Cancelled when the job was cancelled. Called where a progress event would be
# too many (between the tensors of a LoRA swap).
Check = Callable[[], None]


def style_refs(loras: list) -> tuple[LoraRef, ...]:
    """A request's LoRAs as the normalised set (merged, zero strengths dropped, ordered by key)."""
    refs = []
    for lora in loras:
        lora = LoraInput(*lora)
        refs.append(LoraRef(lora.style_id or lora.path, lora.path, float(lora.strength)))
    return normalise(refs)


def _cpu_rng_fork(device: torch.device):
    """ltx-core's enhancement forks the RNG of `[model.device]` as CUDA devices, which on a CPU
    engine (the tests) asks for a CUDA driver; there only the CPU generator needs forking."""
    if device.type == "cuda":
        return contextlib.nullcontext()
    real = torch.random.fork_rng
    return mock.patch.object(torch.random, "fork_rng", lambda devices=None, **kw: real(devices=[], **kw))


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU, as the official pipelines run. On a CPU (the tests, a laptop trying the engine)
    fp32: a CPU without AVX-512 BF16 emulates bf16 convolutions, and the video VAE is all 3-D
    convolutions (Conv3d 32→32 on 9×64×64 on an AVX2 EPYC: 5.5 s in bf16, 0.31 s in fp32), while the
    memory fp32 costs is nothing on the models a CPU can run."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class ResidentPipeline:
    def __init__(self, paths: ModelPaths, pipeline: str, device: torch.device, transformer_cache_bytes: int,
                 dev_steps: int | None = None, prompt_cache_entries: int = 256, quantization=None,
                 placement: "Placement | None" = None):
        """`transformer_cache_bytes` is now the budget for LoRA files cached in CPU memory (the
        flag kept its name for the worker that passes it); there is no transformer cache."""
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}; one of {', '.join(PIPELINES)}")
        if pipeline == "dev" and not paths.distilled_lora:
            raise ValueError("the dev pipeline needs the distilled LoRA for its second stage")
        self.pipeline = pipeline
        self.device = device
        self.dtype = compute_dtype(device)
        self.paths = paths
        # What the memory plan decided (plan.py): fp8 transformer, what waits on the CPU.
        self.placement = placement or Placement()
        quantization = quantization or self.placement.quantization()
        started = time.monotonic()
        source = checkpoint.OneOpenCheckpoint(paths.checkpoint)
        try:
            self.params = source.pipeline_params()
            self.dev_steps = dev_steps or self.params.num_inference_steps
            self.hq_steps = dev_steps or LTX_2_3_HQ_PARAMS.num_inference_steps
            self.ledger = ModelLedger(dtype=self.dtype, device=device, checkpoint_path=paths.checkpoint,
                                      gemma_root_path=paths.gemma, spatial_upsampler_path=paths.spatial_upsampler,
                                      quantization=quantization)
            checkpoint.share(self.ledger, source)
            self.text_encoder = self.ledger.text_encoder()
            tie_gemma_head(self.text_encoder)  # ltx-core's untied lm_head copy: 2 GB the engine never uses
            self.gemma = GemmaOffload(self.text_encoder, device, self.placement)  # to the CPU now if planned
            self.embeddings_processor = self.ledger.gemma_embeddings_processor()
            self.video_encoder = self.ledger.video_encoder()
            self.video_decoder = self.ledger.video_decoder()
            # Audio-to-video and retake encode their input audio (a few tens of MB at full size).
            self.audio_encoder = self.ledger.audio_encoder()
            self.audio_decoder = self.ledger.audio_decoder()
            # fp32 vocoder: it is small (tens of MB) and its output is the waveform the user hears.
            # In bf16 (8 mantissa bits) that waveform carries rounding noise only ~37 dB below the
            # signal (tiny model, same input, bf16 vs fp32: SNR 37.5 dB, max |diff| 0.05 on a peak
            # of 1.0), audible as hiss in quiet passages; fp32 costs little next to the transformer.
            # Its bf16 input is cast in `_decode_audio`.
            self.vocoder = self.ledger.vocoder().float()
            self.upsampler = self.ledger.spatial_upsampler()
            self.transformer = self.ledger.transformer()
        finally:
            source.close()
        self.components = PipelineComponents(dtype=self.dtype, device=device)
        self.num_layers = len(self.transformer.velocity_model.transformer_blocks)
        self.lora_files = LoraFiles(transformer_cache_bytes)
        self.loras = ResidentLoras(self.transformer.velocity_model, self.lora_files)
        self.distilled: LoraRef | None = None
        if pipeline == "dev":
            self.lora_files.get(paths.distilled_lora, keep=True)
            self.distilled = LoraRef("distilled", paths.distilled_lora, 1.0, style=False)
            # The base of every tensor stage 2 changes is saved now, so that memory is taken at
            # start-up and the first dev job does not pay for it.
            self.loras.save(self.loras.keys_of(paths.distilled_lora))
        # Prompt embeddings, on the CPU: 256 full-size entries are ~3 GiB the GPU need not hold.
        self.prompts: OrderedDict[str, tuple] = OrderedDict()
        self.prompt_cache_entries = prompt_cache_entries
        self.load_seconds = time.monotonic() - started

    @property
    def resident_style_set(self) -> str | None:
        """The key of the style set applied to the transformer now ("" for none), as the
        scheduler writes it; empty while the dev pipeline's second-stage set is applied; None
        while unknown (a swap that failed and could not be rolled back)."""
        applied = self.loras.applied
        if applied is None:
            return None
        return style_set_key(applied) if all(r.style for r in applied) else ""

    # -- models -----------------------------------------------------------------------------

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = hashlib.sha256(prompt.encode()).hexdigest()
        if key in self.prompts:
            self.prompts.move_to_end(key)
        else:
            with self.gemma:  # on the GPU for the encoding only, when the plan keeps Gemma on the CPU
                hidden_states, mask = self.text_encoder.encode(prompt)
            out = self.embeddings_processor.process_hidden_states(hidden_states, mask)
            self.prompts[key] = tuple(None if t is None else t.to("cpu") for t in (out.video_encoding,
                                                                                  out.audio_encoding))
            while len(self.prompts) > self.prompt_cache_entries:
                self.prompts.popitem(last=False)
        return tuple(None if t is None else t.to(self.device) for t in self.prompts[key])

    # -- generation -------------------------------------------------------------------------

    @property
    def presets(self) -> tuple[str, ...]:
        """The quality presets this engine can run with the weights it loaded."""
        return PRESETS[self.pipeline]

    def enhance(self, prompt: str, image: str | None, seed: int) -> str:
        """The official prompt enhancement (`generate_enhanced_prompt`: Gemma's `generate()` with
        ltx-core's t2v / i2v system prompts) on the resident Gemma."""
        with self.gemma, _cpu_rng_fork(self.device):
            return generate_enhanced_prompt(self.text_encoder, prompt, image, seed=seed)

    def check(self, req: Request) -> None:
        """Refuses what the model cannot do, before any work (the API validates too)."""
        if req.pipeline not in (None, self.pipeline):
            raise EngineFailure("engine_error", f"this engine runs the {self.pipeline} pipeline, not {req.pipeline}")
        if req.quality not in (None, *self.presets):
            raise EngineFailure("invalid_input", f"the {req.quality} preset is not loaded: this engine runs the "
                                                 f"{self.pipeline} weights ({', '.join(self.presets)})")
        try:
            assert_resolution(height=req.height, width=req.width, is_two_stage=True)
        except (ValueError, AssertionError) as e:  # 1.0.0 raises ValueError
            raise EngineFailure("invalid_input", str(e) or "width and height must be multiples of 64") from e
        if req.num_frames < 1 or (req.num_frames - 1) % 8:
            raise EngineFailure("invalid_input", f"num_frames must be 8k+1, got {req.num_frames}")
        for image in req.images:
            if not 0 <= image.frame_idx < req.num_frames:
                raise EngineFailure("invalid_input", f"image frame {image.frame_idx} is outside the clip")
        wrong = check_mode(req.mode, req.num_frames)
        if wrong:
            raise EngineFailure("invalid_input", wrong)

    @torch.inference_mode()
    def generate(self, req: Request, progress: Progress, check: Check = lambda: None, preview=None):
        """Returns (frames uint8 [f, h, w, 3] on the CPU, Audio) and the timings in seconds.
        `preview(frames)`, when given, receives stage 1's half-size clip as soon as it is made."""
        self.check(req)
        preset = req.quality or DEFAULT_PRESET[self.pipeline]
        styles = style_refs(req.loras)
        timings = {}
        mark = time.monotonic()
        generator = torch.Generator(device=self.device).manual_seed(req.seed)
        noiser = GaussianNoiser(generator=generator)
        progress("encoding_prompt", 0, 1)
        prompt = req.prompt
        if req.enhance_prompt:
            req.enhanced_prompt = prompt = self.enhance(req.prompt, self._enhance_image(req), req.seed)
            timings["enhance_prompt"] = time.monotonic() - mark
        contexts = self.encode_prompt(prompt)
        # The input audio of audio-to-video: encoded once, held frozen by both stages.
        audio_in = self._input_audio(req) if req.mode.kind == "audio_to_video" else None
        self._swap(styles + self._stage_1_loras(preset, req), check, timings)
        timings["prepare"] = time.monotonic() - mark
        mark = time.monotonic()

        if req.mode.kind == "retake":
            video_latent, audio_latent = self._retake(req, preset, contexts, noiser, progress)
            timings["stage_1"] = time.monotonic() - mark
            mark = time.monotonic()
        else:
            frozen_audio = None if audio_in is None else audio_in[1]
            video_latent, audio_latent = self._stage_1(req, preset, contexts, noiser, progress, frozen_audio)
            timings["stage_1"] = time.monotonic() - mark
            mark = time.monotonic()
            if preview is not None:
                preview(self._decode_stage_1(video_latent, req, check))
                timings["preview"] = time.monotonic() - mark
                mark = time.monotonic()

            progress("upsampling", 0, 1)
            upscaled = upsample_video(latent=video_latent[:1], video_encoder=self.video_encoder,
                                      upsampler=self.upsampler)
            del video_latent
            stage_2 = self._stage_2_loras(preset)
            if stage_2 is not None:
                # Stage 2 is the same base transformer with the distilled LoRA added to the styles.
                self._swap(styles + stage_2, check, timings)
            timings["upsample"] = time.monotonic() - mark
            mark = time.monotonic()
            video_latent, audio_latent = self._stage_2(req, preset, contexts, noiser, upscaled, audio_latent,
                                                       progress, frozen=audio_in is not None)
            del upscaled
            timings["stage_2"] = time.monotonic() - mark
            mark = time.monotonic()
        self._swap(styles, check, timings)  # back to the styles alone (nothing to do when they are on)

        frames = self._decode_video(video_latent, req.num_frames, generator, progress)
        # Audio-to-video returns the input's audio, as the official pipeline does (its fidelity
        # is the point); the worker puts the original file's track on the clip anyway.
        audio = audio_in[0] if audio_in is not None else self._decode_audio(audio_latent)
        timings["decode"] = time.monotonic() - mark
        return frames, audio, timings

    def _swap(self, refs: tuple[LoraRef, ...], check: Check, timings: dict) -> None:
        """Applies a LoRA set; its seconds are also reported apart as `lora_swap` (they are part of
        the phase that swaps)."""
        mark = time.monotonic()
        self.loras.apply(refs, check)
        timings["lora_swap"] = timings.get("lora_swap", 0.0) + time.monotonic() - mark

    def _enhance_image(self, req: Request) -> str | None:
        """The image the official pipelines enhance with: the first conditioning image."""
        images = req.mode.keyframes if req.mode.kind == "keyframes" else req.images
        return images[0].path if images and req.mode.kind != "retake" else None

    def _stage_1_loras(self, preset: str, req: Request) -> tuple[LoraRef, ...]:
        """What stage 1 (or retake's one stage) adds to the styles: the HQ pipeline runs its first
        stage with the distilled LoRA at 0.25; the others with the styles only."""
        if preset == "best" and req.mode.kind != "retake":
            return (self.distilled._replace(strength=HQ_DISTILLED_LORA_STAGE_1),)
        return ()

    def _stage_2_loras(self, preset: str) -> tuple[LoraRef, ...] | None:
        if preset == "balanced":
            return (self.distilled,)
        if preset == "best":
            return (self.distilled._replace(strength=HQ_DISTILLED_LORA_STAGE_2),)
        return None  # fast: the distilled checkpoint refines as it is

    def _input_audio(self, req: Request):
        """Audio-to-video's input: (its waveform for the clip's length, its latent) — the
        official `decode_audio_from_file` → `encode_audio`, cut to the clip's audio latent frames."""
        seconds = req.num_frames / req.fps
        audio = load_audio(req.mode.audio, seconds, self.device)
        if audio is None:
            raise EngineFailure("invalid_input", "the audio file has no audio stream")
        latent = vae_encode_audio(audio, self.audio_encoder)
        shape = VideoPixelShape(batch=1, frames=req.num_frames, width=req.width, height=req.height, fps=req.fps)
        return audio, fit_latent_frames(latent, AudioLatentShape.from_video_pixel_shape(shape).frames)

    def _stage_1(self, req: Request, preset: str, contexts, noiser, progress: Progress, frozen_audio=None):
        """Half-resolution denoising; returns only the latents, so whatever else the stage made
        (its denoising function and guiders, the negative prompt's embeddings) is freed here.
        With `frozen_audio` (audio-to-video) only the video is denoised, the audio held as given."""
        half = VideoPixelShape(batch=1, frames=req.num_frames, width=req.width // 2, height=req.height // 2,
                               fps=req.fps)
        if preset == "fast":
            sigmas = torch.tensor(DISTILLED_SIGMA_VALUES, device=self.device)
        elif preset == "best":
            empty = torch.empty(VideoLatentShape.from_pixel_shape(half).to_torch_shape())
            sigmas = LTX2Scheduler().execute(latent=empty, steps=self.hq_steps).to(dtype=torch.float32,
                                                                                  device=self.device)
        else:
            sigmas = LTX2Scheduler().execute(steps=self.dev_steps).to(dtype=torch.float32, device=self.device)
        denoise = self._stage_1_denoiser(preset, contexts, audio_frozen=frozen_audio is not None)
        video_state, audio_state = self._denoise(half, self._conditionings(req, half), noiser, sigmas, denoise,
                                                 "sampling", progress, sampler=self._sampler(preset),
                                                 initial_audio_latent=frozen_audio, video_only=frozen_audio is not None)
        return video_state.latent, (frozen_audio if audio_state is None else audio_state.latent)

    def _stage_1_denoiser(self, preset: str, contexts, audio_frozen: bool):
        """The official pipelines' first-stage denoising: distilled — the plain model; dev
        two-stage — the sigma-dependent guider factories; HQ and audio-to-video — constant
        guiders (audio-to-video's audio guider does nothing: its audio is not denoised)."""
        v_context, a_context = contexts
        if preset == "fast":
            return simple_denoising_func(video_context=v_context, audio_context=a_context,
                                         transformer=self.transformer)
        v_context_n, a_context_n = self.encode_prompt(DEFAULT_NEGATIVE_PROMPT)
        params = LTX_2_3_HQ_PARAMS if preset == "best" else self.params
        if preset == "balanced" and not audio_frozen:
            return multi_modal_guider_factory_denoising_func(
                video_guider_factory=create_multimodal_guider_factory(
                    params=self._guider(params.video_guider_params), negative_context=v_context_n),
                audio_guider_factory=create_multimodal_guider_factory(
                    params=self._guider(params.audio_guider_params), negative_context=a_context_n),
                v_context=v_context, a_context=a_context, transformer=self.transformer,
            )
        audio_guider = (MultiModalGuider(params=MultiModalGuiderParams()) if audio_frozen else
                        MultiModalGuider(params=self._guider(params.audio_guider_params), negative_context=a_context_n))
        return multi_modal_guider_denoising_func(
            video_guider=MultiModalGuider(params=self._guider(params.video_guider_params), negative_context=v_context_n),
            audio_guider=audio_guider, v_context=v_context, a_context=a_context, transformer=self.transformer,
        )

    @staticmethod
    def _sampler(preset: str) -> str:
        return "res2s" if preset == "best" else "euler"

    def _stage_2(self, req: Request, preset: str, contexts, noiser, upscaled, audio_latent, progress: Progress,
                 frozen: bool = False):
        v_context, a_context = contexts
        full = VideoPixelShape(batch=1, frames=req.num_frames, width=req.width, height=req.height, fps=req.fps)
        sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMA_VALUES, device=self.device)
        denoise = simple_denoising_func(video_context=v_context, audio_context=a_context, transformer=self.transformer)
        video_state, audio_state = self._denoise(full, self._conditionings(req, full), noiser, sigmas, denoise,
                                                 "refining", progress, noise_scale=sigmas[0],
                                                 initial_video_latent=upscaled, initial_audio_latent=audio_latent,
                                                 sampler=self._sampler(preset), video_only=frozen)
        return video_state.latent, (audio_latent if audio_state is None else audio_state.latent)

    def _retake(self, req: Request, preset: str, contexts, noiser, progress: Progress):
        """The official `RetakePipeline`, one stage at full size: the video and its audio encoded
        as the initial latents, `TemporalRegionMask` keeping the latents outside the span (denoise
        mask 0) and regenerating those inside. Distilled (`fast`) or dev (guided, `dev_steps`);
        the official pipeline has no HQ variant, so `best` retakes as `balanced` does."""
        mode = req.mode
        full = VideoPixelShape(batch=1, frames=req.num_frames, width=req.width, height=req.height, fps=req.fps)
        # The official pipeline encodes the whole clip in one call; here its pixels stay on the CPU
        # and the encoder runs in ltx-core's tiles (as the decoder does), so a long 1080p source
        # needs a tile's memory on the GPU, not the clip's.
        pixels = load_video_on_canvas(mode.video, req.width, req.height, req.num_frames, self.dtype,
                                      torch.device("cpu"))
        video_latent = self.video_encoder.tiled_encode(pixels, TilingConfig.default())
        del pixels
        start, end = mode.start_frame / req.fps, mode.end_frame / req.fps
        video_conditionings = [TemporalRegionMask(start_time=start if mode.regenerate_video else 0.0,
                                                  end_time=end if mode.regenerate_video else 0.0, fps=req.fps)]
        audio_latent, audio_conditionings = None, []
        audio = load_audio(mode.video, req.num_frames / req.fps, self.device)
        if audio is not None:
            audio_latent = _encode_audio_for_retake(self.audio_encoder, audio.waveform.squeeze(0),
                                                    audio.sampling_rate, full, self.dtype)
            audio_conditionings = [TemporalRegionMask(start_time=start if mode.regenerate_audio else 0.0,
                                                      end_time=end if mode.regenerate_audio else 0.0, fps=req.fps)]

        v_context, a_context = contexts
        if preset == "fast":
            sigmas = torch.tensor(DISTILLED_SIGMA_VALUES, device=self.device)
            denoise = simple_denoising_func(video_context=v_context, audio_context=a_context,
                                            transformer=self.transformer)
        else:
            sigmas = LTX2Scheduler().execute(steps=self.dev_steps).to(dtype=torch.float32, device=self.device)
            v_context_n, a_context_n = self.encode_prompt(DEFAULT_NEGATIVE_PROMPT)
            denoise = multi_modal_guider_denoising_func(
                MultiModalGuider(params=self._guider(self.params.video_guider_params), negative_context=v_context_n),
                MultiModalGuider(params=self._guider(self.params.audio_guider_params), negative_context=a_context_n),
                v_context=v_context, a_context=a_context, transformer=self.transformer,
            )
        video_state, video_tools = noise_video_state(
            output_shape=full, noiser=noiser, conditionings=video_conditionings, components=self.components,
            dtype=self.dtype, device=self.device, initial_latent=video_latent)
        audio_state, audio_tools = noise_audio_state(
            output_shape=full, noiser=noiser, conditionings=audio_conditionings, components=self.components,
            dtype=self.dtype, device=self.device, initial_latent=audio_latent)
        step = self._counting(denoise, "sampling", len(sigmas) - 1, progress)
        video_state, audio_state = euler_denoising_loop(sigmas=sigmas, video_state=video_state,
                                                        audio_state=audio_state, stepper=EulerDiffusionStep(),
                                                        denoise_fn=step)
        progress("sampling", len(sigmas) - 1, len(sigmas) - 1)
        video_state = video_tools.unpatchify(video_tools.clear_conditioning(video_state))
        audio_state = audio_tools.unpatchify(audio_tools.clear_conditioning(audio_state))
        return video_state.latent, audio_state.latent

    def _decode_video(self, latent, num_frames: int, generator, progress: Progress) -> torch.Tensor:
        """Decodes chunk by chunk, checking for a cancel between chunks (a long clip's decode is
        many seconds)."""
        tiling = TilingConfig.default()
        total = max(1, get_video_chunks_number(num_frames, tiling))
        chunks = []
        progress("decoding", 0, total)
        for chunk in vae_decode_video(latent, self.video_decoder, tiling, generator):
            chunks.append(chunk.to("cpu"))
            progress("decoding", min(len(chunks), total), total)
        return torch.cat(chunks, dim=0)

    def _decode_stage_1(self, latent, req: Request, check: Check) -> torch.Tensor:
        """Stage 1's half-size latents decoded as they are (`--intermediate-previews`): no extra
        denoising, and a generator of its own, so the final clip is the same with or without it."""
        generator = torch.Generator(device=self.device).manual_seed(req.seed)
        return self._decode_video(latent[:1], req.num_frames, generator, lambda stage, step, total: check())

    def _decode_audio(self, latent) -> Audio:
        """ltx-core's `decode_audio` with the vocoder's input cast to the vocoder's fp32."""
        mel = self.audio_decoder(latent)
        waveform = self.vocoder(mel.to(next(self.vocoder.parameters()).dtype)).squeeze(0).float()
        return Audio(waveform=waveform, sampling_rate=self.vocoder.output_sampling_rate)

    def _guider(self, params):
        # STG skips self-attention in fixed blocks (28 on the 48-block model); a smaller model of
        # the same family uses its last block. The HQ parameters use no STG (no blocks).
        if not params.stg_blocks:
            return params
        blocks = [b for b in params.stg_blocks if b < self.num_layers] or [self.num_layers - 1]
        return replace(params, stg_blocks=blocks)

    def _conditionings(self, req: Request, shape: VideoPixelShape):
        if req.mode.kind == "keyframes":
            # `KeyframeInterpolationPipeline`: every image (the first too) a guiding latent.
            return image_conditionings_by_adding_guiding_latent(
                images=req.mode.keyframes, height=shape.height, width=shape.width, video_encoder=self.video_encoder,
                dtype=self.dtype, device=self.device)
        return combined_image_conditionings(images=req.images, height=shape.height, width=shape.width,
                                            video_encoder=self.video_encoder, dtype=self.dtype, device=self.device)

    @staticmethod
    def _counting(denoise, stage: str, total: int, progress: Progress):
        """The denoising function, reporting each model evaluation as a step (res_2s evaluates
        twice per step, so its count is of evaluations, not of the schedule's steps)."""
        calls = [0]

        def step(video_state, audio_state, sigmas, step_index):
            progress(stage, min(calls[0], total), total)
            calls[0] += 1
            return denoise(video_state, audio_state, sigmas, step_index)

        return step

    def _denoise(self, shape, conditionings, noiser, sigmas, denoise, stage: str, progress: Progress, **initial):
        """`denoise_audio_video` (or, with `video_only`, `denoise_video_only`: the audio latent
        held as given) with the Euler loop, or the res_2s loop with `sampler="res2s"`. Returns
        (video state, audio state or None when the audio was held)."""
        sampler = initial.pop("sampler", "euler")
        video_only = initial.pop("video_only", False)
        steps = len(sigmas) - 1
        total = 2 * steps + (1 if float(sigmas[-1]) == 0 else 0) if sampler == "res2s" else steps
        step = self._counting(denoise, stage, total, progress)

        def loop(sigmas, video_state, audio_state, stepper):
            if sampler == "res2s":
                return res2s_audio_video_denoising_loop(sigmas=sigmas, video_state=video_state,
                                                        audio_state=audio_state, stepper=stepper, denoise_fn=step,
                                                        model_dtype=self.dtype)
            return euler_denoising_loop(sigmas=sigmas, video_state=video_state, audio_state=audio_state,
                                        stepper=stepper, denoise_fn=step)

        stepper = Res2sDiffusionStep() if sampler == "res2s" else EulerDiffusionStep()
        arguments = dict(output_shape=shape, conditionings=conditionings, noiser=noiser, sigmas=sigmas,
                         stepper=stepper, denoising_loop_fn=loop, components=self.components, dtype=self.dtype,
                         device=self.device, **initial)
        if video_only:
            result = (denoise_video_only(**arguments), None)
        else:
            result = denoise_audio_video(**arguments)
        progress(stage, total, total)
        return result
