"""Process-wide preparation before the models are built: the device, what ltx-core 1.0.0 needs
to run on a CPU, and the Gemma shape read from the Gemma directory."""

import contextlib
import json
from importlib import metadata
from pathlib import Path

import torch

# The Gemma fields that set tensor shapes. ltx-core 1.0.0 hard-codes Gemma-3-12B's values in a
# module-level config; we take them from the directory's config.json instead, which for the real
# 12B model are the same values, and for the test suite's tiny Gemma are its own.
TEXT_SHAPE_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "query_pre_attn_scalar", "vocab_size", "sliding_window",
                     "max_position_embeddings")
VISION_SHAPE_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
                       "patch_size")
TOP_FIELDS = ("mm_tokens_per_image", "boi_token_index", "eoi_token_index", "image_token_index", "eos_token_id")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name} was asked for but torch sees no CUDA device")
    return device


def prepare(device: torch.device, gemma_root: str) -> None:
    if device.type != "cuda":
        # The pipelines call torch.cuda.synchronize()/empty_cache() unconditionally; on a
        # CPU-only host these would raise.
        torch.cuda.synchronize = lambda *a, **k: None
        torch.cuda.empty_cache = lambda *a, **k: None
    apply_gemma_shape(Path(gemma_root) / "config.json")


def apply_gemma_shape(config_json: Path) -> None:
    if not config_json.is_file():
        return  # ltx-core's built-in 12B shape
    apply_gemma_config(json.loads(config_json.read_text()))


def apply_gemma_config(config: dict) -> None:
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX as target

    for name in TOP_FIELDS:
        if name in config:
            setattr(target, name, config[name])
    for section, fields in (("text_config", TEXT_SHAPE_FIELDS), ("vision_config", VISION_SHAPE_FIELDS)):
        values = config.get(section) or {}
        for name in fields:
            if name in values:
                setattr(getattr(target, section), name, values[name])


@contextlib.contextmanager
def gemma_shape(config: dict):
    """ltx-core's module-level Gemma shape set to `config`'s for the block, then put back: the
    planner sizes the full model in a process that may hold the tiny one (the tests)."""
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX as target

    saved = {"": {n: getattr(target, n) for n in TOP_FIELDS if hasattr(target, n)}}
    for section, fields in (("text_config", TEXT_SHAPE_FIELDS), ("vision_config", VISION_SHAPE_FIELDS)):
        part = getattr(target, section)
        saved[section] = {n: getattr(part, n) for n in fields if hasattr(part, n)}
    apply_gemma_config(config)
    try:
        yield
    finally:
        for section, values in saved.items():
            part = target if not section else getattr(target, section)
            for name, value in values.items():
                setattr(part, name, value)


def memory(device: torch.device) -> dict:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return {"total_bytes": total, "free_bytes": free}
    try:
        pages = __import__("os").sysconf("SC_PHYS_PAGES") * __import__("os").sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    return {"total_bytes": pages, "free_bytes": None}


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
