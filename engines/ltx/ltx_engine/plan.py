"""The GPU memory plan: where each model lives and the most the GPU holds during a job.

Made before anything is loaded, from the exact sizes of the weights (`weights.py`: the model files'
safetensors headers, or the full-size LTX-2.3 model built on torch's `meta` device from the vendored
config).

What a job adds on top of the resident weights is an estimate with its basis written beside each
formula (`activation_bytes`, `decode_bytes`); `ltx_engine.bench --random-weights` measures the real
peak on a GPU to check it.

    python -m ltx_engine.plan --pipeline distilled|dev --gpu-memory-gib N [--fp8]
        [--width W --height H --num-frames F] [--json]
        [--checkpoint F --gemma DIR --spatial-upsampler F --distilled-lora F --style-lora F ...]

Exit status 0 when the plan fits, 3 when it does not (the reason names the component and the
shortfall in GiB).
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field

# The sizes of the weights, importable from here as before the planner was split in two.
from .weights import (  # noqa: F401
    AUDIO_VAE_STATISTICS,
    CHECKPOINT_CONNECTORS,
    CHECKPOINT_TRANSFORMER,
    FULL_CONFIG,
    STYLE_LORA_RANK,
    VAE_STATISTICS,
    WeightSizes,
    checkpoint_component,
    fp8_cast_rules,
    gemma_size,
    load_full_config,
    loaded_bytes,
    read_safetensors_header,
    sizes_from_config,
    sizes_from_files,
)

GIB = 1 << 30
PIPELINES = ("distilled", "dev")

# CUDA context, cuBLAS/cuDNN workspaces and allocator slack (the engine sets
# expandable_segments, which keeps fragmentation low): held back from every plan.
RUNTIME_RESERVE_BYTES = 2 * GIB
# Prompts are padded to this many tokens (ltx-core's Gemma tokenizer); Gemma's 48 layers + the
# embedding give 49 hidden states that the feature extractor concatenates.
PROMPT_TOKENS = 1024
# Prompt embeddings cached on the CPU by the engine (prompt_cache_entries).
PROMPT_CACHE_ENTRIES = 256
AUDIO_LATENTS_PER_SECOND = 25  # 16 kHz mel, hop 160, 4x temporal downsampling (ltx_core.types)
DEFAULT_FPS = 24


# -- what a job adds --------------------------------------------------------------------------

def video_tokens(width: int, height: int, num_frames: int, scale: int = 32) -> int:
    """Latent tokens of a clip: (F-1)/8+1 latent frames x H/32 x W/32 (the VAE's 8x temporal and 32x
    spatial compression; patch size 1). Stage 1 runs at half size: scale 64."""
    return ((num_frames - 1) // 8 + 1) * (height // scale) * (width // scale)


def audio_tokens(num_frames: int, fps: int = DEFAULT_FPS) -> int:
    return -(-num_frames * AUDIO_LATENTS_PER_SECOND // fps)


# Per token, in units of the stream's width x 2 bytes, what one transformer forward holds at its
# peak (read from ltx_core.model.transformer: per-token timesteps because of the denoise mask):
#   9  the AdaLN modulation per token (adaln coefficient 9 with gated attention)
#   1  the embedded timestep
#   4  the audio-video cross-attention modulations (scale/shift/gate of both directions)
#   2  the RoPE cos/sin tables (fp32, half the width each)
#   1  the residual stream x
#   10 the feed-forward peak inside a block: norm(x) + Linear(4x) + GELU(4x) + the block output
# = 27 widths per token. SDPA (flash / memory-efficient kernels) holds no T x T matrix.
ACTIVATION_WIDTHS = 27


def activation_bytes(sizes: WeightSizes, width: int, height: int, num_frames: int, scale: int,
                     conditioning_frames: int = 0) -> int:
    """One transformer forward at this size (scale 64: stage 1 at half size; 32: stage 2).
    `conditioning_frames` images appended to the sequence as guiding latents (keyframes: one
    latent frame of tokens each, `VideoConditionByKeyframeIndex`)."""
    tokens = video_tokens(width, height, num_frames, scale) + conditioning_frames * (height // scale) * (width // scale)
    video = tokens * sizes.video_width
    audio = audio_tokens(num_frames) * sizes.audio_width
    latents = tokens * 128 * 4 * 6  # fp32 latent, noise, x0, velocity...
    return (video + audio) * 2 * ACTIVATION_WIDTHS + latents


# The most keyframes a keyframes job has (src/domain/request/modes: MAX_KEYFRAMES).
MAX_KEYFRAMES = 8
# res_2s (the `best` preset) keeps its anchor, midpoint and two denoised estimates in fp64 beside
# the state: 4 latents x 8 bytes per latent value, video and audio.
RES2S_LATENT_BYTES = 4 * 8


def res2s_bytes(width: int, height: int, num_frames: int, scale: int) -> int:
    return (video_tokens(width, height, num_frames, scale) * 128 + audio_tokens(num_frames) * 128) * RES2S_LATENT_BYTES


def encode_bytes(width: int, height: int, num_frames: int) -> int:
    """Retake's video encode: ltx-core's `tiled_encode` (the same 512 px x 64-frame tiles as the
    decode) with the clip's pixels on the CPU; one tile's working set (the decode's basis) plus
    the latent and its blend weights on the GPU."""
    frames = min(num_frames, DECODE_TILE_FRAMES + 1)
    tile_w, tile_h = min(width, DECODE_TILE_PIXELS), min(height, DECODE_TILE_PIXELS)
    working = frames * (tile_w // 4) * (tile_h // 4) * 128 * 2 * 8
    tile_pixels = frames * 3 * tile_w * tile_h * 2
    latent = video_tokens(width, height, num_frames) * 128 * 2 * 2
    return working + tile_pixels + latent


def audio_encode_bytes(num_frames: int, fps: int = DEFAULT_FPS) -> int:
    """Audio-to-video's and retake's audio encode: the stereo 16 kHz mel (100 frames/s x 64 bins)
    through the audio VAE encoder (128 channels at full mel size, ~8 tensors live, bf16), plus the
    waveform in fp32 at up to 48 kHz."""
    mel_frames = -(-num_frames * 100 // fps)
    return mel_frames * 64 * 2 * 128 * 2 * 8 + -(-num_frames * 48_000 // fps) * 2 * 4


def text_encoding_bytes(sizes: WeightSizes) -> int:
    """Gemma on one padded prompt: the 49 stacked hidden states + one layer's MLP (bf16)."""
    hidden_states = PROMPT_TOKENS * sizes.gemma_hidden * (sizes.gemma_layers + 1) * 2
    mlp = PROMPT_TOKENS * sizes.gemma_intermediate * 2 * 3
    return hidden_states * 2 + mlp  # the stack and its normalised copy


def prompt_embedding_bytes(sizes: WeightSizes) -> int:
    """One cached prompt: video + audio contexts of 1024 tokens in bf16 (4096 + 2048 wide: 12 MiB)."""
    return PROMPT_TOKENS * (sizes.video_width + sizes.audio_width) * 2


# The video VAE decodes in tiles (ltx-core's TilingConfig.default(): 512 px, 64 frames). Its widest
# layers run at 1/4 of the pixel size (patch size 4) with 128 channels (decoder_base_channels), about
# 8 such tensors live at once; the decoded frames of one temporal tile (fp32, with their blending
# weights) are held at full size before the engine moves them to the CPU.
DECODE_TILE_PIXELS = 512
DECODE_TILE_FRAMES = 64


def decode_bytes(width: int, height: int, num_frames: int) -> int:
    frames = min(num_frames, DECODE_TILE_FRAMES + 1)
    tile_w, tile_h = min(width, DECODE_TILE_PIXELS), min(height, DECODE_TILE_PIXELS)
    working = frames * (tile_w // 4) * (tile_h // 4) * 128 * 2 * 8
    output = frames * 3 * width * height * 4 * 2
    return working + output


# -- the plan ---------------------------------------------------------------------------------

@dataclass
class Component:
    name: str
    bytes: int
    placement: str  # "gpu" or "cpu"
    note: str = ""


@dataclass
class Plan:
    pipeline: str
    gpu_memory_bytes: int
    fp8: bool
    fp8_forced: bool
    width: int
    height: int
    num_frames: int
    components: list[Component]
    phases: dict[str, int]
    peak_bytes: int
    fits: bool
    shortfall_bytes: int = 0
    reason: str = ""
    total_parameters: int = 0
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def placement(self, name: str) -> str | None:
        return next((c.placement for c in self.components if c.name == name), None)

    def component_bytes(self, name: str) -> int:
        return next((c.bytes for c in self.components if c.name == name), 0)

    def to_json(self) -> dict:
        return {**asdict(self), "usable_bytes": self.gpu_memory_bytes - RUNTIME_RESERVE_BYTES}


# Always in CPU memory, as the engine keeps them (resident.py / loras.py): LoRA files (the distilled
# LoRA's delta is applied one layer at a time, 7 GB streamed at PCIe speed) and the pinned copy of
# the base tensors that undoes a delta (read only when the LoRA set changes).
ALWAYS_CPU = frozenset({"distilled_lora", "lora_undo_copy"})
# What a plan moves to the CPU when the GPU is short: Gemma, used only to encode a new prompt.
CPU_CANDIDATES = ("gemma",)


def make_plan(pipeline: str, gpu_memory_bytes: int, fp8: bool, width: int, height: int, num_frames: int,
              paths: dict | None = None, sizes: WeightSizes | None = None) -> Plan:
    """The placement of every component and the job's peak on the GPU. `paths` (checkpoint, gemma,
    spatial_upsampler, distilled_lora, style_loras) reads the files' headers; without them the
    vendored full-size config is planned."""
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; one of {', '.join(PIPELINES)}")
    if sizes is None:
        sizes = (sizes_from_files(paths["checkpoint"], paths["gemma"], paths["spatial_upsampler"],
                                  paths.get("distilled_lora"), paths.get("style_loras") or [])
                 if paths else sizes_from_config(load_full_config()))
    plan = _place(pipeline, gpu_memory_bytes, fp8, width, height, num_frames, sizes, cpu=set(ALWAYS_CPU))
    for name in CPU_CANDIDATES:
        if plan.fits:
            break
        if plan.component_bytes(name):
            plan = _place(pipeline, gpu_memory_bytes, fp8, width, height, num_frames, sizes,
                          cpu={c.name for c in plan.components if c.placement == "cpu"} | {name})
    if not plan.fits and not fp8:
        # The only way left: the transformer in fp8 (ltx-core's fp8 cast), with everything movable on the CPU.
        forced = _place(pipeline, gpu_memory_bytes, True, width, height, num_frames, sizes, cpu=set(CPU_CANDIDATES) | ALWAYS_CPU)
        if forced.fits:
            forced.fp8_forced = True
            forced.notes.append("the transformer is cast to fp8: in bf16 it does not fit")
            plan = forced
    return plan


def _place(pipeline: str, gpu_memory_bytes: int, fp8: bool, width: int, height: int, num_frames: int,
           sizes: WeightSizes, cpu: set[str]) -> Plan:
    def where(name: str) -> str:
        return "cpu" if name in cpu else "gpu"

    transformer = sizes.transformer_fp8 if fp8 else sizes.transformer
    touched = sizes.lora_touched_fp8 if fp8 else sizes.lora_touched
    components = [
        Component("transformer", transformer, "gpu", "fp8 cast" if fp8 else "bf16"),
        Component("text_connectors", sizes.text_connectors, "gpu"),
        Component("video_vae_encoder", sizes.video_vae_encoder, "gpu"),
        Component("video_vae_decoder", sizes.video_vae_decoder, "gpu"),
        Component("audio_vae_decoder", sizes.audio_vae_decoder, "gpu"),
        Component("audio_vae_encoder", sizes.audio_vae_encoder, "gpu", "audio-to-video and retake"),
        Component("vocoder", sizes.vocoder, "gpu"),
        Component("spatial_upsampler", sizes.spatial_upsampler, "gpu"),
        Component("gemma", sizes.gemma, where("gemma"),
                  "moved to the GPU to encode a new prompt, back after" if "gemma" in cpu else ""),
    ]
    if pipeline == "dev":
        components.append(Component("distilled_lora", sizes.distilled_lora, where("distilled_lora"),
                                    "applied as a delta for stage 2, layer by layer"))
    components += [
        Component("style_loras", sizes.style_loras, "gpu", "while a set is applied (counted whole)"),
        # Saved copy of the tensors a delta overwrites, restored to undo it exactly.
        Component("lora_undo_copy", touched, where("lora_undo_copy"),
                  "pinned CPU memory" if "lora_undo_copy" in cpu else ""),
        Component("prompt_cache", PROMPT_CACHE_ENTRIES * prompt_embedding_bytes(sizes), "cpu",
                  f"{PROMPT_CACHE_ENTRIES} prompts; moved to the GPU per job"),
    ]
    transient = {"style_loras"}  # on the GPU only during the delta phase
    resident = sum(c.bytes for c in components if c.placement == "gpu" and c.name not in transient)
    contexts = prompt_embedding_bytes(sizes) * (2 if pipeline == "dev" else 1)  # prompt (+ negative)
    gemma_in = sizes.gemma if "gemma" in cpu else 0
    # A delta is applied one Linear at a time: the largest one in fp32 is the temporary it needs.
    delta = 4 * sizes.video_width * sizes.video_width * 4 * 2  # the delta in fp32 + the layer's LoRA A, B
    stage_1 = resident + contexts + activation_bytes(sizes, width, height, num_frames, 64)
    stage_2 = resident + contexts + activation_bytes(sizes, width, height, num_frames, 32)
    # Every mode runs on every engine (resident.py), so the plan covers the most each needs. A
    # retake's one full-size stage is `stage_2` (same size, same contexts); audio-to-video's
    # stages are the standard ones (its audio latent is in the sequence either way).
    phases = {
        "encode_prompt": resident + gemma_in + text_encoding_bytes(sizes),
        "stage_1": stage_1,
        "lora_delta": resident + sizes.style_loras + delta,
        "stage_2": stage_2,
        "decode": resident + decode_bytes(width, height, num_frames),
        "keyframes_stage_1": resident + contexts + activation_bytes(sizes, width, height, num_frames, 64,
                                                                    MAX_KEYFRAMES),
        "keyframes_stage_2": resident + contexts + activation_bytes(sizes, width, height, num_frames, 32,
                                                                    MAX_KEYFRAMES),
        "encode_video": resident + encode_bytes(width, height, num_frames),
        "encode_audio": resident + audio_encode_bytes(num_frames),
    }
    if pipeline == "dev":  # `best` (the HQ pipeline, res_2s) runs on the dev weights
        phases["best_stage_1"] = stage_1 + res2s_bytes(width, height, num_frames, 64)
        phases["best_stage_2"] = stage_2 + res2s_bytes(width, height, num_frames, 32)
    peak = max(phases.values())
    usable = gpu_memory_bytes - RUNTIME_RESERVE_BYTES
    plan = Plan(pipeline=pipeline, gpu_memory_bytes=gpu_memory_bytes, fp8=fp8, fp8_forced=False, width=width,
                height=height, num_frames=num_frames, components=components, phases=phases, peak_bytes=peak,
                fits=peak <= usable, total_parameters=sizes.total_parameters, source=sizes.source)
    if not plan.fits:
        plan.shortfall_bytes = peak - usable
        plan.reason = _reason(plan, usable)
    return plan


def _reason(plan: Plan, usable: int) -> str:
    phase = max(plan.phases, key=plan.phases.get)
    largest = max((c for c in plan.components if c.placement == "gpu"), key=lambda c: c.bytes)
    return (f"needs {plan.peak_bytes / GIB:.1f} GiB at {phase} but {usable / GIB:.1f} GiB is usable "
            f"({plan.gpu_memory_bytes / GIB:.1f} GiB less {RUNTIME_RESERVE_BYTES / GIB:.0f} GiB for the CUDA "
            f"runtime): short by {plan.shortfall_bytes / GIB:.1f} GiB; the largest part on the GPU is the "
            f"{largest.name} ({largest.bytes / GIB:.1f} GiB{', fp8' if plan.fp8 and largest.name == 'transformer' else ''})"
            + ("" if plan.fp8 else "; even in fp8 it does not fit"))


class PlanRefused(RuntimeError):
    """A configuration that cannot fit the GPU, refused before anything is loaded."""

    def __init__(self, plan: Plan):
        super().__init__(f"the {plan.pipeline} pipeline at {plan.width}x{plan.height}x{plan.num_frames} does not "
                         f"fit this GPU: {plan.reason}")
        self.plan = plan


# -- command line -----------------------------------------------------------------------------

def format_table(plan: Plan) -> str:
    lines = [f"LTX-2.3 {plan.pipeline} pipeline, {plan.width}x{plan.height}x{plan.num_frames}, "
             f"GPU {plan.gpu_memory_bytes / GIB:.1f} GiB, transformer {'fp8' if plan.fp8 else 'bf16'}"
             f"{' (forced: bf16 does not fit)' if plan.fp8_forced else ''}; sizes from {plan.source}"
             f" ({plan.total_parameters / 1e9:.2f}B parameters in the LTX bundle)",
             "", f"{'component':<20} {'GiB':>7}  placement  note", "-" * 72]
    for c in plan.components:
        lines.append(f"{c.name:<20} {c.bytes / GIB:>7.2f}  {c.placement:<9}  {c.note}")
    lines += ["-" * 72, "GPU at each phase of a job (GiB): "
              + ", ".join(f"{k} {v / GIB:.1f}" for k, v in plan.phases.items()),
              f"peak {plan.peak_bytes / GIB:.1f} GiB of {(plan.gpu_memory_bytes - RUNTIME_RESERVE_BYTES) / GIB:.1f} "
              f"usable: {'fits' if plan.fits else 'DOES NOT FIT'}"]
    if plan.reason:
        lines.append("why: " + plan.reason)
    lines += ["note: " + n for n in plan.notes]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ltx_engine.plan", description="The GPU memory plan of an LTX-2.3 engine.")
    p.add_argument("--pipeline", default="distilled", choices=PIPELINES)
    p.add_argument("--gpu-memory-gib", type=float, required=True, help="the GPU's total memory")
    p.add_argument("--fp8", action="store_true", help="cast the transformer to fp8 (ltx-core's fp8_cast)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=768)
    p.add_argument("--num-frames", type=int, default=121)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--checkpoint")
    p.add_argument("--gemma")
    p.add_argument("--spatial-upsampler")
    p.add_argument("--distilled-lora")
    p.add_argument("--style-lora", action="append", default=[], help="a style LoRA to plan for (repeatable)")
    return p.parse_args(argv)


def paths_from_args(args: argparse.Namespace) -> dict | None:
    given = [args.checkpoint, args.gemma, args.spatial_upsampler]
    if not any(given):
        return None
    if not all(given):
        raise SystemExit("plan: --checkpoint, --gemma and --spatial-upsampler go together")
    return {"checkpoint": args.checkpoint, "gemma": args.gemma, "spatial_upsampler": args.spatial_upsampler,
            "distilled_lora": args.distilled_lora, "style_loras": args.style_lora}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = make_plan(args.pipeline, int(args.gpu_memory_gib * GIB), args.fp8, args.width, args.height,
                     args.num_frames, paths_from_args(args))
    print(json.dumps(plan.to_json()) if args.json else format_table(plan))
    return 0 if plan.fits else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
