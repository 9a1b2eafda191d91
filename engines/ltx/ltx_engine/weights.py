"""What each model weighs as ltx-core loads it: the sizes the memory plan (`plan.py`) places.

Exact, not guessed:

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
"""

import json
import struct
from dataclasses import dataclass
from pathlib import Path

FULL_CONFIG = Path(__file__).with_name("ltx23_full.json")
# The rank a style LoRA is planned with when no style file is given (published LTX LoRAs are 16-128).
STYLE_LORA_RANK = 64

# ltx-core loads floating tensors in the pipeline dtype (bf16); integer buffers keep their width.
_ELEMENT_BYTES = {"BF16": 2, "F16": 2, "F32": 2, "F64": 2, "F8_E4M3": 1, "F8_E5M2": 1,
                  "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


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
    # Audio-to-video and retake encode their input audio (the engine keeps the encoder resident).
    audio_vae_encoder: int = 0
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
    for tensors the engine never loads."""
    if key.startswith(CHECKPOINT_CONNECTORS):
        return ["text_connectors"]
    if key.startswith(CHECKPOINT_TRANSFORMER):
        return ["transformer"]
    if key.startswith(VAE_STATISTICS):  # both halves of the VAE load their own copy
        return ["video_vae_encoder", "video_vae_decoder"]
    if key.startswith(AUDIO_VAE_STATISTICS):  # so do the audio VAE's
        return ["audio_vae_encoder", "audio_vae_decoder"]
    for prefix, name in (("vae.encoder.", "video_vae_encoder"), ("vae.decoder.", "video_vae_decoder"),
                         ("audio_vae.decoder.", "audio_vae_decoder"), ("audio_vae.encoder.", "audio_vae_encoder"),
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
        audio_vae_encoder=totals.get("audio_vae_encoder", 0), vocoder=totals.get("vocoder", 0), spatial_upsampler=upsampler, gemma=gemma_bytes,
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
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator

    rules = fp8_cast_rules()

    def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return module.state_dict(keep_vars=True)

    def size(module: torch.nn.Module) -> int:
        return sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in state(module).values())

    from .setup import gemma_shape

    with gemma_shape(config["gemma"]), torch.device("meta"):
        transformer = LTXModelConfigurator.from_config(config)
        parts = {
            "text_connectors": EmbeddingsProcessorConfigurator.from_config(config),
            "video_vae_encoder": VideoEncoderConfigurator.from_config(config),
            "video_vae_decoder": VideoDecoderConfigurator.from_config(config),
            "audio_vae_decoder": AudioDecoderConfigurator.from_config(config),
            "audio_vae_encoder": AudioEncoderConfigurator.from_config(config),
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
