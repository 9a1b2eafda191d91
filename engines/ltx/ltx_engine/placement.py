"""What the memory plan (`plan.py`) decides, applied to the loaded models: the engine does what the
plan says, it is not a comment.

* `Placement` is the part of a plan the pipeline needs: whether the transformer is cast to fp8 and
  which components wait on the CPU between uses.
* `tie_gemma_head` drops the untied copy of Gemma's embedding that ltx-core loads as `lm_head` (only
  prompt enhancement, which the engine never runs, uses it): 2 GB at full size.
* `GemmaOffload` keeps Gemma on the CPU between prompt encodings when the plan says so.
"""

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Placement:
    fp8: bool = False
    cpu: frozenset[str] = field(default_factory=frozenset)  # components that wait on the CPU

    @classmethod
    def from_plan(cls, plan) -> "Placement":
        return cls(fp8=plan.fp8, cpu=frozenset(c.name for c in plan.components if c.placement == "cpu"))

    def on_cpu(self, name: str) -> bool:
        return name in self.cpu

    def quantization(self):
        """ltx-core's fp8 cast policy for the transformer when the plan casts it, else None."""
        if not self.fp8:
            return None
        from ltx_core.quantization import QuantizationPolicy

        return QuantizationPolicy.fp8_cast()


def tie_gemma_head(text_encoder: torch.nn.Module) -> None:
    """Points Gemma's lm_head at its input embedding (the published model ties them) and frees the copy."""
    model = getattr(text_encoder, "model", None)
    head = getattr(model, "lm_head", None)
    language_model = getattr(getattr(model, "model", None), "language_model", None)
    embedding = getattr(language_model, "embed_tokens", None)
    if head is None or embedding is None or head.weight is embedding.weight:
        return
    head.weight = embedding.weight


class GemmaOffload:
    """Moves Gemma to the GPU for an encoding and back to the CPU after, when the plan says so; keeps it
    where it is otherwise. Use as `with offload: encode(...)`."""

    def __init__(self, text_encoder: torch.nn.Module, device: torch.device, placement: Placement):
        self.text_encoder = text_encoder
        self.device = device
        self.enabled = placement.on_cpu("gemma") and device.type == "cuda"
        if self.enabled:
            self._move(torch.device("cpu"))

    def _move(self, device: torch.device) -> None:
        self.text_encoder.to(device)
        if device.type == "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __enter__(self):
        if self.enabled:
            self._move(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._move(torch.device("cpu"))


def plan_at_start(pipeline: str, device: torch.device, fp8: bool, gpu_memory_gib: float | None, plan_size: str,
                  paths: dict):
    """The plan for this engine, made from the model files' headers before anything is loaded.
    Raises `plan.PlanRefused` (the component and the shortfall in GiB) when it cannot fit. On the CPU
    (the tests' tiny model) there is no GPU to plan unless `gpu_memory_gib` is given."""
    from . import plan as planner

    if gpu_memory_gib is None and device.type != "cuda":
        return None
    total = int(gpu_memory_gib * planner.GIB) if gpu_memory_gib else torch.cuda.mem_get_info(device)[1]
    width, height, frames = (int(v) for v in plan_size.lower().split("x"))
    plan = planner.make_plan(pipeline, total, fp8, width, height, frames, paths)
    if not plan.fits:
        raise planner.PlanRefused(plan)
    return plan
