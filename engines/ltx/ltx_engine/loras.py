"""LoRA sets on one resident transformer: applied as in-place deltas (W = W0 + Σ s·B·A) and undone
exactly by restoring the touched tensors from a saved copy of the base weights, never by reading
the checkpoint again.

Each fused tensor is computed by ltx-core's own `apply_loras` (the function
`ModelLedger.with_loras(...).transformer()` fuses with) from the saved base tensor and the LoRA
tensors, in the same order, so a swapped-in set equals a transformer built with that set from the
file (bf16 adds, fp8 cast weights and all), and does not depend on which set was there before.
"""

from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import NamedTuple

import torch
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraStateDictWithStrength, StateDict, apply_loras
from ltx_core.loader.sft_loader import SafetensorsStateDictLoader


class LoraRef(NamedTuple):
    """One LoRA of a set: `id` names it in the set's key (the style id the worker sends, else the
    path), `style` is False for the distilled LoRA the dev pipeline adds in its second stage."""

    id: str
    path: str
    strength: float
    style: bool = True


# -- the set's key -----------------------------------------------------------------------------


def format_strength(strength: float) -> str:
    """A strength as Rust's `f64` Display writes it (the scheduler's key is made in Rust): the
    shortest digits that read back as the same number, never an exponent, no trailing `.0`."""
    text = format(Decimal(repr(float(strength))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _part(ref: LoraRef) -> str:
    return f"{ref.id}@{format_strength(ref.strength)}"


def normalise(refs: Iterable[LoraRef]) -> tuple[LoraRef, ...]:
    """The set a request asks for: duplicates of one id merged (strengths added), zero strengths
    dropped, ordered as the key lists them. Two requests with the same set give the same tuple
    whatever the order of their `styles`, so the same fused weights."""
    # As `style_set_key_of` in src/store/codec.rs does it, to the last bit: sorted by id, a
    # duplicate's strengths added in ascending order (float addition is not associative).
    merged: dict[str, LoraRef] = {}
    for ref in sorted(refs, key=lambda r: (r.id, r.strength)):
        seen = merged.get(ref.id)
        merged[ref.id] = ref if seen is None else seen._replace(strength=seen.strength + ref.strength)
    return tuple(r for r in merged.values() if r.strength != 0)


def style_set_key(refs: Iterable[LoraRef]) -> str:
    """`"id@strength"` of each LoRA of the normalised set, sorted by id, joined by `,`: the same string
    as `style_set_key` in src/store/codec.rs, so the scheduler can match a worker's resident set."""
    return ",".join(_part(r) for r in normalise(refs))


# -- LoRA files --------------------------------------------------------------------------------


class LoraFiles:
    """LoRA state dicts kept in CPU memory (they are small next to the transformer), least
    recently used dropped beyond a byte budget; `keep` ones (the distilled LoRA) are never dropped.
    Loaded as `SingleGPUModelBuilder` loads a LoRA: ltx-core's loader, its ComfyUI renaming, CPU."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[str, StateDict] = OrderedDict()
        self.kept: set[str] = set()
        self.reads = 0

    def get(self, path: str, keep: bool = False) -> StateDict:
        if path in self.entries:
            self.entries.move_to_end(path)
        else:
            self.entries[path] = SafetensorsStateDictLoader().load(path, LTXV_LORA_COMFY_RENAMING_MAP,
                                                                    torch.device("cpu"))
            self.reads += 1
        if keep:
            self.kept.add(path)
        return self.entries[path]

    def trim(self, in_use: Iterable[str]) -> None:
        """Drops the least recently used files beyond the budget, except those `in_use` now."""
        protected = self.kept | set(in_use)
        for path in list(self.entries):
            if sum(sd.size for sd in self.entries.values()) <= self.budget_bytes:
                break
            if path not in protected:
                del self.entries[path]


# -- the resident transformer's LoRA state -----------------------------------------------------


def touched_keys(model_keys: Iterable[str], lora: StateDict) -> set[str]:
    """The model tensors a LoRA changes, found as ltx-core's `apply_loras` finds them."""
    found = set()
    for key in model_keys:
        if key.endswith(".weight_scale"):
            continue
        prefix = key[: -len(".weight")]
        if f"{prefix}.lora_A.weight" in lora.sd and f"{prefix}.lora_B.weight" in lora.sd:
            found.add(key)
    return found


def fuse(key: str, base: torch.Tensor, loras) -> torch.Tensor:
    """ltx-core's fusion of `loras` into one weight. It takes bf16 or fp8 weights only; a CPU engine
    holds the checkpoint's bf16 weights in fp32 (resident.compute_dtype), and bf16 → fp32 → bf16 is
    exact, so such a weight goes in as the bf16 it was loaded from with an fp32 target: what
    `ModelLedger(dtype=torch.float32).with_loras(...)` builds from the file."""
    target = None
    if base.dtype == torch.float32:
        base, target = base.to(torch.bfloat16), torch.float32
    one = StateDict(sd={key: base}, device=base.device, size=base.nbytes, dtype={base.dtype})
    return apply_loras(one, loras, dtype=target).sd[key]


class ResidentLoras:
    """The LoRA set applied to one model's weights. `apply(refs)` makes every tensor the set
    touches equal to ltx-core's fusion of that set into the base weights, and every tensor an
    earlier set touched equal to its base again. The base of a tensor is saved (pinned CPU memory
    on CUDA, a CPU copy otherwise) the first time a set touches it.

    `check()` is called between tensors and may raise (a cancelled job): the swap then puts every
    tensor back to its base before the exception leaves, so the model is the base model, whole."""

    def __init__(self, model: torch.nn.Module, files: LoraFiles):
        self.files = files
        self.params: dict[str, torch.Tensor] = dict(model.state_dict(keep_vars=True))
        self.saved: dict[str, torch.Tensor] = {}
        self.touched: set[str] = set()  # tensors that differ from their base now
        self.applied: tuple[LoraRef, ...] = ()
        self.swaps = 0

    @property
    def saved_bytes(self) -> int:
        return sum(t.nbytes for t in self.saved.values())

    def save(self, keys: Iterable[str]) -> None:
        """Saves the base of these tensors now (so the memory is taken at start-up, not mid-job)."""
        for key in keys:
            self._save(key)

    def keys_of(self, path: str) -> set[str]:
        return touched_keys(self.params, self.files.get(path))

    @torch.no_grad()
    def apply(self, refs: tuple[LoraRef, ...], check: Callable[[], None] = lambda: None) -> None:
        if refs == self.applied:
            return
        loras = [LoraStateDictWithStrength(self.files.get(r.path), r.strength) for r in refs]
        target: set[str] = set()
        for lora in loras:
            target |= touched_keys(self.params, lora.state_dict)
        keys = sorted(self.touched | target)
        # Unknown until the swap is whole: if even the rollback below fails, no later request can
        # match a half-written set and render on it.
        self.applied = None
        try:
            for key in keys:
                check()
                self._save(key)
                param = self.params[key]
                base = self.saved[key].to(param.device, non_blocking=True)
                self.touched.add(key)  # before writing: a write cut short is restored too
                if key in target:
                    param.copy_(fuse(key, base, loras))
                else:
                    param.copy_(base)
                    self.touched.discard(key)
        except BaseException:
            self.restore_base()
            raise
        self.applied = refs
        self.swaps += 1
        self.files.trim(r.path for r in refs)

    @torch.no_grad()
    def restore_base(self) -> None:
        """Every tensor back to its saved base: the model as it was built from the checkpoint.
        Copied straight from the saved copy (no GPU temporary: this runs after an out-of-memory
        too)."""
        self.applied = None
        for key in sorted(self.touched):
            self.params[key].copy_(self.saved[key])
        self.touched.clear()
        self.applied = ()

    def _save(self, key: str) -> None:
        if key in self.saved:
            return
        param = self.params[key].detach()
        try:
            # Pinned on CUDA: restoring and re-fusing copy from it at full PCIe speed.
            copy = torch.empty(param.shape, dtype=param.dtype, device="cpu", pin_memory=param.device.type == "cuda")
        except RuntimeError:  # the host's page-locked memory is exhausted: pageable still works
            copy = torch.empty(param.shape, dtype=param.dtype, device="cpu")
        copy.copy_(param)
        self.saved[key] = copy
