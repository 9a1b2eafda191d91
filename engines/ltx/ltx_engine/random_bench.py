"""GPU benchmark of the full-size model with random weights: no checkpoint, no Gemma, no download.

`python -m ltx_engine.bench --random-weights` lands here. The models are built from the vendored
full-size config (`ltx23_full.json`, or the tiny test config) with ltx-core's own configurators, on
the meta device, then materialised in bf16 directly on the target device and filled with random
values, so a GPU host needs only torch, ltx-core and ltx-pipelines (no weights, no network). The
text encoder is replaced by random prompt embeddings of the real shape (1024 tokens x the
connectors' widths). Random weights give meaningless frames but the same shapes, kernels and
memory as the real model, so the times and the peak memory are the real ones.

Per pipeline and size it times: stage 1 (distilled: 8 steps; dev: `--dev-steps` guided steps at half
size), upsample, the dev pipeline's distilled-LoRA delta (rank 384, applied after stage 1 and undone
after stage 2), stage 2 (3 steps), video + audio decode, and a style switch (a random rank-64 LoRA
applied as an in-place delta over every Linear of the blocks, then undone from a saved copy), with
torch.cuda.max_memory_allocated per case.

    python -m ltx_engine.bench --random-weights [--config full|tiny|FILE] [--device auto|cuda|cpu]
        [--pipelines distilled,dev] [--cases 1280x768x121,1920x1088x121] [--runs 1] [--dev-steps 30]
        [--fp8] [--out results.json]
"""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import plan as planner

os.environ.setdefault("TQDM_DISABLE", "1")  # before ltx-pipelines imports tqdm: the table is the output

PROMPT_TOKENS = planner.PROMPT_TOKENS
DISTILLED_LORA_RANK = 384
STYLE_LORA_RANK = planner.STYLE_LORA_RANK


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ltx_engine.bench --random-weights")
    p.add_argument("--config", default="full", help="full (ltx23_full.json), tiny (the test model) or a JSON file")
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    p.add_argument("--pipelines", default="distilled,dev")
    p.add_argument("--cases", default="1280x768x121,1920x1088x121", help="WIDTHxHEIGHTxFRAMES, comma-separated")
    p.add_argument("--runs", type=int, default=1, help="timed runs per case, after one warm-up run")
    p.add_argument("--dev-steps", type=int, default=30, help="stage-1 steps of the dev pipeline")
    p.add_argument("--fp8", action="store_true", help="store the transformer's block Linears in fp8 (ltx-core's cast)")
    p.add_argument("--undo-copy", choices=["cpu", "gpu"], default="cpu",
                   help="where the copy that undoes a LoRA delta is kept (the plan puts it on the CPU below 141 GB)")
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--out", help="write the results as JSON here too")
    return p.parse_args(argv)


def load_config(name: str) -> dict:
    if name == "full":
        return planner.load_full_config()
    if name == "tiny":
        from . import tiny

        return {**tiny.CONFIG, "upsampler": tiny.UPSAMPLER}
    return json.loads(Path(name).read_text())


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def materialise(build, device: torch.device, seed: int) -> torch.nn.Module:
    """Builds a module on the meta device, then allocates it in bf16 on `device` and fills it with
    random values (no fp32 copy ever exists: a 22B transformer fits where it will run)."""
    with torch.device("meta"):
        module = build()
    module = module.to(dtype=torch.bfloat16).to_empty(device=device)
    generator = None if device.type == "meta" else torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if not tensor.is_floating_point():
                tensor.zero_()
            elif "std-of-means" in name:
                tensor.fill_(1.0)
            elif "mean-of-means" in name:
                tensor.zero_()
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return module.eval()


def cast_fp8(transformer: torch.nn.Module) -> None:
    """ltx-core's fp8 cast applied to a built model: the Linears its downcast map names are stored in
    float8_e4m3fn and upcast in their forward (UPCAST_DURING_INFERENCE)."""
    from ltx_core.quantization import UPCAST_DURING_INFERENCE

    rules = planner.fp8_cast_rules()
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if any(name.startswith(prefix) and name.endswith(suffix) for prefix, suffix in rules):
                param.data = param.data.to(torch.float8_e4m3fn)
    UPCAST_DURING_INFERENCE.mutator(transformer)


class Models:
    def __init__(self, config: dict, device: torch.device, fp8: bool):
        from ltx_core.model.audio_vae import AudioDecoderConfigurator, VocoderConfigurator
        from ltx_core.model.transformer import LTXModelConfigurator, X0Model
        from ltx_core.model.upsampler import LatentUpsamplerConfigurator
        from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

        started = time.monotonic()
        self.velocity = materialise(lambda: LTXModelConfigurator.from_config(config), device, 1)
        if fp8:
            cast_fp8(self.velocity)
        self.transformer = X0Model(self.velocity).eval()
        self.video_encoder = materialise(lambda: VideoEncoderConfigurator.from_config(config), device, 2)
        self.video_decoder = materialise(lambda: VideoDecoderConfigurator.from_config(config), device, 3)
        self.audio_decoder = materialise(lambda: AudioDecoderConfigurator.from_config(config), device, 4)
        self.vocoder = materialise(lambda: VocoderConfigurator.from_config(config), device, 5)
        self.upsampler = materialise(lambda: LatentUpsamplerConfigurator.from_config(config.get("upsampler", {})),
                                     device, 6)
        t = config["transformer"]
        self.video_context_width = t["connector_num_attention_heads"] * t["connector_attention_head_dim"]
        self.audio_context_width = (t.get("audio_connector_num_attention_heads", t["connector_num_attention_heads"])
                                    * t.get("audio_connector_attention_head_dim", t["connector_attention_head_dim"]))
        self.num_layers = t["num_layers"]
        self.linears = [m for n, m in self.velocity.named_modules()
                        if n.startswith("transformer_blocks.") and isinstance(m, torch.nn.Linear)]
        self.build_seconds = time.monotonic() - started


class Delta:
    """A random LoRA applied in place (W += B @ A), undone by restoring the saved tensors."""

    def __init__(self, linears: list[torch.nn.Linear], rank: int, undo_device: torch.device, seed: int):
        self.linears = linears
        self.rank = rank
        self.undo_device = undo_device
        self.seed = seed
        self.saved: list[torch.Tensor] = []

    @torch.no_grad()
    def apply(self) -> None:
        generator = torch.Generator(device=self.linears[0].weight.device).manual_seed(self.seed)
        pin = self.undo_device.type == "cpu" and torch.cuda.is_available()
        for linear in self.linears:
            w = linear.weight
            self.saved.append(w.detach().to(self.undo_device, copy=True).pin_memory() if pin
                              else w.detach().to(self.undo_device, copy=True))
            a = torch.randn(self.rank, w.shape[1], device=w.device, dtype=torch.bfloat16, generator=generator) * 0.01
            b = torch.randn(w.shape[0], self.rank, device=w.device, dtype=torch.bfloat16, generator=generator) * 0.01
            w.copy_((w.float() + (b @ a).float()).to(w.dtype))

    @torch.no_grad()
    def undo(self) -> None:
        for linear, saved in zip(self.linears, self.saved, strict=True):
            linear.weight.copy_(saved, non_blocking=True)
        self.saved = []
        sync(self.linears[0].weight.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(models: Models, pipeline: str, width: int, height: int, frames: int, fps: int, dev_steps: int,
             device: torch.device, undo_device: torch.device) -> dict:
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_core.components.guiders import create_multimodal_guider_factory
    from ltx_core.components.noisers import GaussianNoiser
    from ltx_core.components.schedulers import LTX2Scheduler
    from ltx_core.model.audio_vae import decode_audio as vae_decode_audio
    from ltx_core.model.upsampler import upsample_video
    from ltx_core.model.video_vae import TilingConfig
    from ltx_core.model.video_vae import decode_video as vae_decode_video
    from ltx_core.types import VideoPixelShape
    from ltx_pipelines.utils import (denoise_audio_video, euler_denoising_loop,
                                     multi_modal_guider_factory_denoising_func, simple_denoising_func)
    from ltx_pipelines.utils.constants import (DISTILLED_SIGMA_VALUES, LTX_2_3_PARAMS,
                                               STAGE_2_DISTILLED_SIGMA_VALUES)
    from ltx_pipelines.utils.types import PipelineComponents

    timings: dict[str, float] = {}
    dtype = torch.bfloat16
    components = PipelineComponents(dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(42)
    noiser = GaussianNoiser(generator=generator)
    stepper = EulerDiffusionStep()

    def context(width_: int) -> torch.Tensor:  # a prompt embedding of the real shape, as the text encoder gives
        return torch.randn(1, PROMPT_TOKENS, width_, device=device, dtype=dtype, generator=generator)

    def loop(sigmas, video_state, audio_state, stepper_, denoise):
        return euler_denoising_loop(sigmas=sigmas, video_state=video_state, audio_state=audio_state,
                                    stepper=stepper_, denoise_fn=denoise)

    def denoise(shape, sigmas, denoise_fn, **initial):
        return denoise_audio_video(output_shape=shape, conditionings=[], noiser=noiser, sigmas=sigmas, stepper=stepper,
                                   denoising_loop_fn=lambda s, v, a, st: loop(s, v, a, st, denoise_fn),
                                   components=components, dtype=dtype, device=device, **initial)

    def timed(name: str, fn):
        sync(device)
        mark = time.monotonic()
        result = fn()
        sync(device)
        timings[name] = time.monotonic() - mark
        return result

    v_context, a_context = context(models.video_context_width), context(models.audio_context_width)
    half = VideoPixelShape(batch=1, frames=frames, width=width // 2, height=height // 2, fps=fps)
    full = VideoPixelShape(batch=1, frames=frames, width=width, height=height, fps=fps)
    with torch.inference_mode():
        if pipeline == "distilled":
            sigmas = torch.tensor(DISTILLED_SIGMA_VALUES, device=device)
            stage_1 = simple_denoising_func(video_context=v_context, audio_context=a_context,
                                            transformer=models.transformer)
        else:
            sigmas = LTX2Scheduler().execute(steps=dev_steps).to(dtype=torch.float32, device=device)

            def guider(params):
                blocks = [b for b in params.stg_blocks if b < models.num_layers] or [models.num_layers - 1]
                return replace(params, stg_blocks=blocks)

            stage_1 = multi_modal_guider_factory_denoising_func(
                video_guider_factory=create_multimodal_guider_factory(
                    params=guider(LTX_2_3_PARAMS.video_guider_params),
                    negative_context=context(models.video_context_width)),
                audio_guider_factory=create_multimodal_guider_factory(
                    params=guider(LTX_2_3_PARAMS.audio_guider_params),
                    negative_context=context(models.audio_context_width)),
                v_context=v_context, a_context=a_context, transformer=models.transformer)
        video_state, audio_state = timed("stage_1", lambda: denoise(half, sigmas, stage_1))
        upscaled = timed("upsample", lambda: upsample_video(latent=video_state.latent[:1],
                                                            video_encoder=models.video_encoder,
                                                            upsampler=models.upsampler))
        distilled = None
        if pipeline == "dev":  # stage 2 = the same transformer + the distilled LoRA as a delta
            distilled = Delta(models.linears, DISTILLED_LORA_RANK, undo_device, seed=7)
            timed("lora_delta", distilled.apply)
        sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMA_VALUES, device=device)
        stage_2 = simple_denoising_func(video_context=v_context, audio_context=a_context,
                                        transformer=models.transformer)
        video_state, audio_state = timed("stage_2", lambda: denoise(
            full, sigmas, stage_2, noise_scale=sigmas[0], initial_video_latent=upscaled,
            initial_audio_latent=audio_state.latent))
        if distilled is not None:
            timed("lora_undo", distilled.undo)

        def decode():
            chunks = vae_decode_video(video_state.latent, models.video_decoder, TilingConfig.default(), generator)
            frames_out = torch.cat([chunk.to("cpu") for chunk in chunks], dim=0)
            vae_decode_audio(audio_state.latent, models.audio_decoder, models.vocoder)
            return frames_out

        decoded = timed("decode", decode)
        if tuple(decoded.shape[:3]) != (frames, height, width):
            raise SystemExit(f"decoded {tuple(decoded.shape)}, expected {frames}x{height}x{width}")
    style = Delta(models.linears, STYLE_LORA_RANK, undo_device, seed=11)
    timed("style_apply", style.apply)
    timed("style_undo", style.undo)
    timings["style_switch"] = timings.pop("style_apply") + timings.pop("style_undo")
    return timings


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    device = pick_device(args.device)
    undo_device = device if args.undo_copy == "gpu" else torch.device("cpu")
    config = load_config(args.config)
    models = Models(config, device, args.fp8)
    weights = sum(t.numel() * t.element_size() for t in models.velocity.state_dict().values())
    print(f"random-weight {args.config} model on {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}: "
          f"transformer {weights / planner.GIB:.2f} GiB{' fp8' if args.fp8 else ' bf16'}, "
          f"built in {models.build_seconds:.1f} s; torch {torch.__version__}")
    print("| pipeline | size | frames | stage 1 s | upsample s | LoRA delta s | stage 2 s | decode s | "
          "style switch s | total s | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = {"config": args.config, "device": str(device), "fp8": args.fp8, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "transformer_bytes": weights, "cases": []}
    for pipeline in args.pipelines.split(","):
        for case in args.cases.split(","):
            width, height, frames = (int(v) for v in case.lower().split("x"))
            runs = []
            for run in range(args.runs + 1):  # the first run warms kernels and the allocator up
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                timings = run_case(models, pipeline, width, height, frames, args.fps, args.dev_steps, device,
                                   undo_device)
                peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
                if run > 0 or args.runs == 0:
                    runs.append({"timings": timings, "peak_memory_bytes": peak})
            med = {k: statistics.median(r["timings"].get(k, 0.0) for r in runs)
                   for k in ("stage_1", "upsample", "lora_delta", "stage_2", "decode", "style_switch")}
            total = sum(v for k, v in med.items() if k != "style_switch")
            peak = max((r["peak_memory_bytes"] or 0) for r in runs) / planner.GIB
            print(f"| {pipeline} | {width}×{height} | {frames} | {med['stage_1']:.2f} | {med['upsample']:.2f} | "
                  f"{med['lora_delta']:.2f} | {med['stage_2']:.2f} | {med['decode']:.2f} | {med['style_switch']:.2f} | "
                  f"{total:.2f} | {peak:.1f} |", flush=True)
            results["cases"].append({"pipeline": pipeline, "width": width, "height": height, "frames": frames,
                                     "dev_steps": args.dev_steps if pipeline == "dev" else None,
                                     "median_seconds": med, "total_seconds": total, "peak_memory_gib": peak,
                                     "runs": runs})
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
