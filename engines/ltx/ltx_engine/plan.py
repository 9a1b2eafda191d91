"""The GPU memory plan: what each model weighs, where it lives, and the most the GPU holds during a job.

Made before anything is loaded, from sizes that are exact, not guessed:

* with model paths, the safetensors headers (8-byte little-endian length + JSON: dtype and shape of
  every tensor; no tensor data is read), grouped by the key prefixes ltx-core's loaders use
  (`model.diffusion_model.`, `text_embedding_projection.`, `vae.encoder.`, ...), plus the Gemma
  directory's headers;
* without them, the full-size LTX-2.3 model from the vendored config `ltx23_full.json` (the published
  dimensions; its `_sources` say where each comes from), built on torch's `meta` device with
  ltx-core's own configurators, so the parameter counts are ltx-core's.

Weights are counted as ltx-core loads them: floating tensors in bf16 (2 bytes), and with fp8 the
tensors ltx-core's `QuantizationPolicy.fp8_cast()` downcasts (its `TRANSFORMER_LINEAR_DOWNCAST_MAP`:
the attention and feed-forward Linears of the transformer blocks) in float8_e4m3fn (1 byte).
Gemma as ltx-core loads it carries an untied copy of its embedding as `lm_head` (GEMMA_LLM_KEY_OPS
duplicates it for prompt enhancement; a separate 2 GB tensor at full size, measured on the tiny
model); the engine never generates text, so it ties the head back to the embedding
(`placement.tie_gemma_head`) and the plan counts Gemma's parameters once.

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
import struct
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

GIB = 1 << 30
FULL_CONFIG = Path(__file__).with_name("ltx23_full.json")
PIPELINES = ("distilled", "dev")

# CUDA context, cuBLAS/cuDNN workspaces and allocator slack (the engine sets
# expandable_segments, which keeps fragmentation low): held back from every plan.
RUNTIME_RESERVE_BYTES = 2 * GIB
# Prompts are padded to this many tokens (ltx-core's Gemma tokenizer); Gemma's 48 layers + the
# embedding give 49 hidden states that the feature extractor concatenates.
PROMPT_TOKENS = 1024
# The rank a style LoRA is planned with when no style file is given (published LTX LoRAs are 16-128).
STYLE_LORA_RANK = 64
# Prompt embeddings cached on the CPU by the engine (prompt_cache_entries).
PROMPT_CACHE_ENTRIES = 256
AUDIO_LATENTS_PER_SECOND = 25  # 16 kHz mel, hop 160, 4x temporal downsampling (ltx_core.types)
DEFAULT_FPS = 24

# ltx-core loads floating tensors in the pipeline dtype (bf16); integer buffers keep their width.
_ELEMENT_BYTES = {"BF16": 2, "F16": 2, "F32": 2, "F64": 2, "F8_E4M3": 1, "F8_E5M2": 1,
                  "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


# -- sizes of the weights ---------------------------------------------------------------------

@dataclass
class WeightSizes:
    """Bytes of every component as loaded, and what the transformer's fp8 cast and LoRA deltas touch."""
    transformer: int
    transformer_fp8: int
    # Bytes (bf16 / fp8) of the base tensors a LoRA delta writes: the undo copy saves exactly these.
    lora_touched: int
    lora_touched_fp8: int
    text_connectors: int
    video_vae_encoder: int
    video_vae_decoder: int
    audio_vae_decoder: int
    vocoder: int
    spatial_upsampler: int
    gemma: int
    distilled_lora: int
    style_loras: int
    # Shapes the activation estimates need.
    video_width: int = 4096
    audio_width: int = 2048
    gemma_hidden: int = 3840
    gemma_layers: int = 48
    gemma_intermediate: int = 15360
    transformer_parameters: int = 0
    total_parameters: int = 0
    source: str = ""


def read_safetensors_header(path: str | Path) -> dict[str, tuple[str, list[int]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header; no tensor data is read."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return {name: (entry["dtype"], list(entry["shape"])) for name, entry in header.items()}


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def loaded_bytes(dtype: str, shape: list[int]) -> int:
    return _numel(shape) * _ELEMENT_BYTES.get(dtype, 2)


def fp8_cast_rules() -> list[tuple[str, str]]:
    """(prefix, suffix) of the transformer keys ltx-core's fp8 cast stores in float8_e4m3fn."""
    from ltx_core.loader.sd_ops import SDKeyValueOperation
    from ltx_core.quantization import QuantizationPolicy

    mapping = QuantizationPolicy.fp8_cast().sd_ops.mapping
    return [(op.key_matcher.prefix, op.key_matcher.suffix) for op in mapping if isinstance(op, SDKeyValueOperation)]


def _is_fp8_cast(key: str, rules: list[tuple[str, str]]) -> bool:
    return any(key.startswith(prefix) and key.endswith(suffix) for prefix, suffix in rules)


def _is_block_linear_weight(key: str, shape: list[int]) -> bool:
    return key.startswith("transformer_blocks.") and key.endswith(".weight") and len(shape) == 2


CHECKPOINT_TRANSFORMER = "model.diffusion_model."
CHECKPOINT_CONNECTORS = ("model.diffusion_model.video_embeddings_connector.",
                         "model.diffusion_model.audio_embeddings_connector.", "text_embedding_projection.")
VAE_STATISTICS = "vae.per_channel_statistics."
AUDIO_VAE_STATISTICS = "audio_vae.per_channel_statistics."


def checkpoint_component(key: str) -> list[str]:
    """The components a checkpoint tensor is loaded into (ltx-core's *_KEYS_FILTER prefixes); empty
    for tensors the engine never loads (the audio VAE's encoder)."""
    if key.startswith(CHECKPOINT_CONNECTORS):
        return ["text_connectors"]
    if key.startswith(CHECKPOINT_TRANSFORMER):
        return ["transformer"]
    if key.startswith(VAE_STATISTICS):  # both halves of the VAE load their own copy
        return ["video_vae_encoder", "video_vae_decoder"]
    for prefix, name in (("vae.encoder.", "video_vae_encoder"), ("vae.decoder.", "video_vae_decoder"),
                         ("audio_vae.decoder.", "audio_vae_decoder"), (AUDIO_VAE_STATISTICS, "audio_vae_decoder"),
                         ("vocoder.", "vocoder")):
        if key.startswith(prefix):
            return [name]
    return []


def _lora_bytes_and_targets(path: str) -> tuple[int, set[str]]:
    header = read_safetensors_header(path)
    targets = set()
    for key in header:
        if key.endswith(".lora_A.weight"):
            targets.add(key.removeprefix("diffusion_model.")[: -len(".lora_A.weight")] + ".weight")
    return sum(loaded_bytes(dtype, shape) for dtype, shape in header.values()), targets


def sizes_from_files(checkpoint: str, gemma: str, spatial_upsampler: str, distilled_lora: str | None,
                     style_loras: list[str]) -> WeightSizes:
    """Sizes read from the model files' headers."""
    rules = fp8_cast_rules()
    totals: dict[str, int] = {}
    transformer_fp8 = 0
    transformer_tensors: dict[str, tuple[str, list[int]]] = {}
    parameters = 0
    for key, (dtype, shape) in read_safetensors_header(checkpoint).items():
        components = checkpoint_component(key)
        for name in components:
            totals[name] = totals.get(name, 0) + loaded_bytes(dtype, shape)
        if components:
            parameters += _numel(shape)
        if components == ["transformer"]:
            inner = key[len(CHECKPOINT_TRANSFORMER):]
            transformer_tensors[inner] = (dtype, shape)
            transformer_fp8 += _numel(shape) if _is_fp8_cast(inner, rules) else loaded_bytes(dtype, shape)
    targets: set[str] = set()
    distilled = 0
    if distilled_lora:
        distilled, found = _lora_bytes_and_targets(distilled_lora)
        targets |= found
    styles = 0
    for path in style_loras:
        size, found = _lora_bytes_and_targets(path)
        styles += size
        targets |= found
    if not targets:  # no LoRA given: a LoRA over every Linear of the blocks, as published LoRAs are
        targets = {k for k, (_, shape) in transformer_tensors.items() if _is_block_linear_weight(k, shape)}
    touched = [(k, *transformer_tensors[k]) for k in targets if k in transformer_tensors]
    gemma_bytes, gemma_hidden, gemma_layers = _gemma_from_files(Path(gemma))
    upsampler = sum(loaded_bytes(d, s) for d, s in read_safetensors_header(spatial_upsampler).values())
    block_0 = {k: s for k, (_, s) in transformer_tensors.items() if k.startswith("transformer_blocks.0.")}
    video_width = block_0.get("transformer_blocks.0.attn1.to_q.weight", [4096])[0]
    audio_width = block_0.get("transformer_blocks.0.audio_attn1.to_q.weight", [2048])[0]
    ff = block_0.get("transformer_blocks.0.ff.net.0.proj.weight")
    return WeightSizes(
        transformer=totals.get("transformer", 0), transformer_fp8=transformer_fp8,
        lora_touched=sum(loaded_bytes(d, s) for _, d, s in touched),
        lora_touched_fp8=sum(_numel(s) if _is_fp8_cast(k, rules) else loaded_bytes(d, s) for k, d, s in touched),
        text_connectors=totals.get("text_connectors", 0), video_vae_encoder=totals.get("video_vae_encoder", 0),
        video_vae_decoder=totals.get("video_vae_decoder", 0), audio_vae_decoder=totals.get("audio_vae_decoder", 0),
        vocoder=totals.get("vocoder", 0), spatial_upsampler=upsampler, gemma=gemma_bytes,
        distilled_lora=distilled, style_loras=styles, video_width=video_width, audio_width=audio_width,
        gemma_hidden=gemma_hidden, gemma_layers=gemma_layers, gemma_intermediate=(ff[0] if ff else 4 * video_width),
        transformer_parameters=sum(_numel(s) for _, s in transformer_tensors.values()),
        total_parameters=parameters, source="headers",
    )


def _gemma_from_files(root: Path) -> tuple[int, int, int]:
    """Gemma's bytes (its lm_head tied to the embedding, as the engine keeps it), hidden size, layers."""
    # The files ltx-core loads (ModelLedger): every safetensors file below the folder of the first
    # `model*.safetensors` found anywhere under the root, so a nested layout is counted too.
    first = next(iter(sorted(root.rglob("model*.safetensors"))), None)
    folder = first.parent if first else root
    total = 0
    for path in sorted(folder.rglob("*.safetensors")):
        for key, (dtype, shape) in read_safetensors_header(path).items():
            total += loaded_bytes(dtype, shape)
    hidden, layers = 3840, 48
    config = next((p for p in (root / "config.json", folder / "config.json") if p.is_file()), root / "config.json")
    if config.is_file():
        text = json.loads(config.read_text()).get("text_config", {})
        hidden, layers = text.get("hidden_size", hidden), text.get("num_hidden_layers", layers)
    return total, hidden, layers


def load_full_config(path: Path = FULL_CONFIG) -> dict:
    return json.loads(Path(path).read_text())


def sizes_from_config(config: dict) -> WeightSizes:
    """Sizes of a model built from a config on torch's meta device with ltx-core's configurators."""
    import torch
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, VocoderConfigurator
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator

    rules = fp8_cast_rules()

    def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return module.state_dict(keep_vars=True)

    def size(module: torch.nn.Module) -> int:
        return sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in state(module).values())

    with torch.device("meta"):
        transformer = LTXModelConfigurator.from_config(config)
        parts = {
            "text_connectors": EmbeddingsProcessorConfigurator.from_config(config),
            "video_vae_encoder": VideoEncoderConfigurator.from_config(config),
            "video_vae_decoder": VideoDecoderConfigurator.from_config(config),
            "audio_vae_decoder": AudioDecoderConfigurator.from_config(config),
            "vocoder": VocoderConfigurator.from_config(config),
            "spatial_upsampler": LatentUpsamplerConfigurator.from_config(config.get("upsampler", {})),
        }
    tensors = state(transformer)
    transformer_bytes = size(transformer)
    fp8 = sum(t.numel() * (1 if _is_fp8_cast(k, rules) else 2) for k, t in tensors.items())
    block_linears = {k: t for k, t in tensors.items() if _is_block_linear_weight(k, list(t.shape))}
    # A LoRA of rank r over a Linear [out, in] stores A [r, in] and B [out, r], in bf16.
    distilled = sum(384 * (t.shape[0] + t.shape[1]) * 2 for t in block_linears.values())
    style = sum(STYLE_LORA_RANK * (t.shape[0] + t.shape[1]) * 2 for t in block_linears.values())
    gemma_bytes, _ = gemma_size(config["gemma"])
    sizes = {name: size(module) for name, module in parts.items()}
    t = config["transformer"]
    parameters = sum(v.numel() for v in tensors.values()) + sum(
        sum(p.numel() for p in m.parameters()) for m in parts.values() if m is not parts["spatial_upsampler"])
    return WeightSizes(
        transformer=transformer_bytes, transformer_fp8=fp8,
        lora_touched=sum(v.numel() * 2 for v in block_linears.values()),
        lora_touched_fp8=sum(v.numel() * (1 if _is_fp8_cast(k, rules) else 2) for k, v in block_linears.items()),
        gemma=gemma_bytes, distilled_lora=distilled, style_loras=style,
        video_width=t["num_attention_heads"] * t["attention_head_dim"],
        audio_width=t["audio_num_attention_heads"] * t["audio_attention_head_dim"],
        gemma_hidden=config["gemma"]["text_config"]["hidden_size"],
        gemma_layers=config["gemma"]["text_config"]["num_hidden_layers"],
        gemma_intermediate=config["gemma"]["text_config"]["intermediate_size"],
        transformer_parameters=sum(v.numel() for v in tensors.values()),
        total_parameters=parameters, source="config",
        **sizes,
    )


def gemma_size(gemma_config: dict) -> tuple[int, int]:
    """(bytes in bf16, parameters) of a Gemma-3 built on the meta device, its lm_head tied to the
    embedding as the engine keeps it."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config(**gemma_config))
    parameters = sum(p.numel() for p in model.parameters())  # tied: the embedding counted once
    return parameters * 2, parameters


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


def activation_bytes(sizes: WeightSizes, width: int, height: int, num_frames: int, scale: int) -> int:
    """One transformer forward at this size (scale 64: stage 1 at half size; 32: stage 2)."""
    video = video_tokens(width, height, num_frames, scale) * sizes.video_width
    audio = audio_tokens(num_frames) * sizes.audio_width
    latents = video_tokens(width, height, num_frames, scale) * 128 * 4 * 6  # fp32 latent, noise, x0, velocity...
    return (video + audio) * 2 * ACTIVATION_WIDTHS + latents


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
    phases = {
        "encode_prompt": resident + gemma_in + text_encoding_bytes(sizes),
        "stage_1": resident + contexts + activation_bytes(sizes, width, height, num_frames, 64),
        "lora_delta": resident + sizes.style_loras + delta,
        "stage_2": resident + contexts + activation_bytes(sizes, width, height, num_frames, 32),
        "decode": resident + decode_bytes(width, height, num_frames),
    }
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
