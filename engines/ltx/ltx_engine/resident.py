"""LTX-2.3 pipelines with the models kept resident between requests.

The official 1.0.0 pipelines (`ltx_pipelines.distilled`, `ltx_pipelines.ti2vid_two_stages`)
rebuild every model from disk on each call. This module runs the same steps — the same
`ltx_core` models, schedules, conditioning, denoising loops and decoders — but builds each model
once, caches prompt embeddings by prompt hash (the 12B text encoder is the expensive part) and
keeps LoRA-fused transformers in a cache with a byte budget, so repeated styles do not rebuild.
"""

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import create_multimodal_guider_factory
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
from ltx_core.model.audio_vae import decode_audio as vae_decode_audio
from ltx_core.model.upsampler import upsample_video
from ltx_core.model.video_vae import TilingConfig
from ltx_core.model.video_vae import decode_video as vae_decode_video
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils import (
    ModelLedger,
    assert_resolution,
    combined_image_conditionings,
    denoise_audio_video,
    euler_denoising_loop,
    multi_modal_guider_factory_denoising_func,
    simple_denoising_func,
)
from ltx_pipelines.utils.args import ImageConditioningInput
from ltx_pipelines.utils.constants import (
    DEFAULT_NEGATIVE_PROMPT,
    DISTILLED_SIGMA_VALUES,
    STAGE_2_DISTILLED_SIGMA_VALUES,
    detect_params,
)
from ltx_pipelines.utils.types import PipelineComponents

from .protocol import EngineFailure

PIPELINES = ("distilled", "dev")


@dataclass
class ModelPaths:
    checkpoint: str
    gemma: str
    spatial_upsampler: str
    distilled_lora: str | None = None


@dataclass
class Request:
    prompt: str
    seed: int
    width: int
    height: int
    num_frames: int
    fps: int
    images: list[ImageConditioningInput] = field(default_factory=list)
    loras: list[tuple[str, float]] = field(default_factory=list)
    pipeline: str | None = None


# progress(stage, step, total); raises Cancelled when the job was cancelled.
Progress = Callable[[str, int, int], None]


class TransformerCache:
    """LoRA-fused transformers keyed by their LoRA set, least recently used dropped beyond a byte
    budget. The one just asked for is always kept, even when it alone exceeds the budget."""

    def __init__(self, build: Callable[[tuple], torch.nn.Module], budget_bytes: int):
        self.build = build
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[tuple, tuple[torch.nn.Module, int]] = OrderedDict()
        self.builds = 0

    def get(self, key: tuple) -> torch.nn.Module:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key][0]
        # Make room first: two 22B transformers do not fit on one GPU at once.
        self._trim(keep_room_for_one_more=True)
        model = self.build(key)
        self.builds += 1
        size = sum(p.numel() * p.element_size() for p in model.parameters())
        self.entries[key] = (model, size)
        self._trim(keep_room_for_one_more=False)
        return model

    def _trim(self, keep_room_for_one_more: bool) -> None:
        def used() -> int:
            return sum(size for _, size in self.entries.values())

        largest = max((size for _, size in self.entries.values()), default=0)
        limit = self.budget_bytes - (largest if keep_room_for_one_more else 0)
        while len(self.entries) > (0 if keep_room_for_one_more else 1) and used() > limit:
            self.entries.popitem(last=False)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class ResidentPipeline:
    def __init__(self, paths: ModelPaths, pipeline: str, device: torch.device, transformer_cache_bytes: int,
                 dev_steps: int | None = None, prompt_cache_entries: int = 256):
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {pipeline!r}; one of {', '.join(PIPELINES)}")
        if pipeline == "dev" and not paths.distilled_lora:
            raise ValueError("the dev pipeline needs the distilled LoRA for its second stage")
        self.pipeline = pipeline
        self.device = device
        self.dtype = torch.bfloat16
        self.paths = paths
        self.params = detect_params(paths.checkpoint)
        self.dev_steps = dev_steps or self.params.num_inference_steps
        self.ledger = ModelLedger(dtype=self.dtype, device=device, checkpoint_path=paths.checkpoint,
                                  gemma_root_path=paths.gemma, spatial_upsampler_path=paths.spatial_upsampler)
        started = time.monotonic()
        self.text_encoder = self.ledger.text_encoder()
        self.embeddings_processor = self.ledger.gemma_embeddings_processor()
        self.video_encoder = self.ledger.video_encoder()
        self.video_decoder = self.ledger.video_decoder()
        self.audio_decoder = self.ledger.audio_decoder()
        self.vocoder = self.ledger.vocoder()
        self.upsampler = self.ledger.spatial_upsampler()
        self.components = PipelineComponents(dtype=self.dtype, device=device)
        self.transformers = TransformerCache(self._build_transformer, transformer_cache_bytes)
        # The transformer every request without styles uses, built now so the first job is not slow.
        base = self.transformers.get(self._stage_keys([])[0])
        self.num_layers = len(base.velocity_model.transformer_blocks)
        self.prompts: OrderedDict[str, tuple] = OrderedDict()
        self.prompt_cache_entries = prompt_cache_entries
        self.load_seconds = time.monotonic() - started

    # -- models -----------------------------------------------------------------------------

    def _build_transformer(self, key: tuple) -> torch.nn.Module:
        loras = tuple(LoraPathStrengthAndSDOps(path, strength, LTXV_LORA_COMFY_RENAMING_MAP) for path, strength in key)
        return self.ledger.with_loras(loras).transformer()

    def _stage_keys(self, loras: list[tuple[str, float]]) -> tuple[tuple, tuple]:
        """The LoRA sets of stage 1 and stage 2. The distilled checkpoint uses one transformer for
        both; dev refines stage 2 with the distilled LoRA fused in."""
        styles = tuple((path, float(strength)) for path, strength in loras)
        if self.pipeline == "distilled":
            return styles, styles
        return styles, (*styles, (self.paths.distilled_lora, 1.0))

    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = hashlib.sha256(prompt.encode()).hexdigest()
        if key in self.prompts:
            self.prompts.move_to_end(key)
            return self.prompts[key]
        hidden_states, mask = self.text_encoder.encode(prompt)
        out = self.embeddings_processor.process_hidden_states(hidden_states, mask)
        self.prompts[key] = (out.video_encoding, out.audio_encoding)
        while len(self.prompts) > self.prompt_cache_entries:
            self.prompts.popitem(last=False)
        return self.prompts[key]

    # -- generation -------------------------------------------------------------------------

    def check(self, req: Request) -> None:
        """Refuses what the model cannot do, before any work (the API validates too)."""
        if req.pipeline not in (None, self.pipeline):
            raise EngineFailure("engine_error", f"this engine runs the {self.pipeline} pipeline, not {req.pipeline}")
        try:
            assert_resolution(height=req.height, width=req.width, is_two_stage=True)
        except AssertionError as e:
            raise EngineFailure("invalid_input", str(e) or "width and height must be multiples of 64") from e
        if req.num_frames < 1 or (req.num_frames - 1) % 8:
            raise EngineFailure("invalid_input", f"num_frames must be 8k+1, got {req.num_frames}")
        for image in req.images:
            if not 0 <= image.frame_idx < req.num_frames:
                raise EngineFailure("invalid_input", f"image frame {image.frame_idx} is outside the clip")

    @torch.inference_mode()
    def generate(self, req: Request, progress: Progress):
        """Returns (frames uint8 [f, h, w, 3] on the CPU, Audio) and the timings in seconds."""
        self.check(req)
        timings = {}
        mark = time.monotonic()
        generator = torch.Generator(device=self.device).manual_seed(req.seed)
        noiser = GaussianNoiser(generator=generator)
        stepper = EulerDiffusionStep()
        progress("encoding_prompt", 0, 1)
        v_context, a_context = self.encode_prompt(req.prompt)
        stage_1_key, stage_2_key = self._stage_keys(req.loras)
        transformer = self.transformers.get(stage_1_key)
        timings["prepare"] = time.monotonic() - mark
        mark = time.monotonic()

        half = VideoPixelShape(batch=1, frames=req.num_frames, width=req.width // 2, height=req.height // 2,
                               fps=req.fps)
        conditionings = self._conditionings(req, half)
        if self.pipeline == "distilled":
            sigmas = torch.tensor(DISTILLED_SIGMA_VALUES, device=self.device)
            denoise = simple_denoising_func(video_context=v_context, audio_context=a_context, transformer=transformer)
        else:
            sigmas = LTX2Scheduler().execute(steps=self.dev_steps).to(dtype=torch.float32, device=self.device)
            v_context_n, a_context_n = self.encode_prompt(DEFAULT_NEGATIVE_PROMPT)
            denoise = multi_modal_guider_factory_denoising_func(
                video_guider_factory=create_multimodal_guider_factory(
                    params=self._guider(self.params.video_guider_params), negative_context=v_context_n),
                audio_guider_factory=create_multimodal_guider_factory(
                    params=self._guider(self.params.audio_guider_params), negative_context=a_context_n),
                v_context=v_context, a_context=a_context, transformer=transformer,
            )
        video_state, audio_state = self._denoise(half, conditionings, noiser, sigmas, stepper, denoise,
                                                 "sampling", progress)
        timings["stage_1"] = time.monotonic() - mark
        mark = time.monotonic()

        progress("upsampling", 0, 1)
        upscaled = upsample_video(latent=video_state.latent[:1], video_encoder=self.video_encoder,
                                  upsampler=self.upsampler)
        full = VideoPixelShape(batch=1, frames=req.num_frames, width=req.width, height=req.height, fps=req.fps)
        transformer = self.transformers.get(stage_2_key)
        sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMA_VALUES, device=self.device)
        denoise = simple_denoising_func(video_context=v_context, audio_context=a_context, transformer=transformer)
        video_state, audio_state = self._denoise(full, self._conditionings(req, full), noiser, sigmas, stepper,
                                                 denoise, "refining", progress, noise_scale=sigmas[0],
                                                 initial_video_latent=upscaled,
                                                 initial_audio_latent=audio_state.latent)
        timings["stage_2"] = time.monotonic() - mark
        mark = time.monotonic()

        progress("decoding", 0, 1)
        chunks = vae_decode_video(video_state.latent, self.video_decoder, TilingConfig.default(), generator)
        frames = torch.cat([chunk.to("cpu") for chunk in chunks], dim=0)
        audio = vae_decode_audio(audio_state.latent, self.audio_decoder, self.vocoder)
        timings["decode"] = time.monotonic() - mark
        return frames, audio, timings

    def _guider(self, params):
        # STG skips self-attention in fixed blocks (28 on the 48-block model); a smaller model of
        # the same family uses its last block.
        blocks = [b for b in params.stg_blocks if b < self.num_layers] or [self.num_layers - 1]
        return replace(params, stg_blocks=blocks)

    def _conditionings(self, req: Request, shape: VideoPixelShape):
        return combined_image_conditionings(images=req.images, height=shape.height, width=shape.width,
                                            video_encoder=self.video_encoder, dtype=self.dtype, device=self.device)

    def _denoise(self, shape, conditionings, noiser, sigmas, stepper, denoise, stage: str, progress: Progress,
                 **initial):
        total = len(sigmas) - 1

        def step(video_state, audio_state, sigmas, step_index):
            progress(stage, step_index, total)
            return denoise(video_state, audio_state, sigmas, step_index)

        def loop(sigmas, video_state, audio_state, stepper):
            return euler_denoising_loop(sigmas=sigmas, video_state=video_state, audio_state=audio_state,
                                        stepper=stepper, denoise_fn=step)

        result = denoise_audio_video(output_shape=shape, conditionings=conditionings, noiser=noiser, sigmas=sigmas,
                                     stepper=stepper, denoising_loop_fn=loop, components=self.components,
                                     dtype=self.dtype, device=self.device, **initial)
        progress(stage, total, total)
        return result

