#!/usr/bin/env bash
# The LTX engine's memory plans for docs/gpu.md: H100 80 GB and H200 141 GB × distilled/dev ×
# bf16/fp8 × 720p/1080p × 5/10/20 s, as a markdown table. Each row is what
# `ltx-serve engine plan --pipeline P --gpu-memory-gib G [--fp8] --width W --height H --num-frames F`
# prints (the same planner, engines/ltx/ltx_engine/plan.py), run in one process so the full-size
# model is built on the meta device once. No GPU and no weights needed.
# GPU totals are what torch.cuda.mem_get_info reports: H100 80 GB ≈ 79.6 GiB, H200 ≈ 139.8 GiB.
# 720p and 1080p are the sizes the engine renders (1280×768, 1920×1088; the worker crops).
# Usage: bench/engine_plans.sh [PYTHON]   (default ./.venv-ltx/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-.venv-ltx/bin/python}
PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")  # absolute, symlink kept (a venv)
cd engines/ltx
"$PYTHON" - <<'PY'
from ltx_engine import plan as p

sizes = p.sizes_from_config(p.load_full_config())
GIB = p.GIB
print(f"Full-size LTX-2.3 from ltx_engine/ltx23_full.json: {sizes.total_parameters / 1e9:.2f}B parameters in the "
      f"bundle; transformer {sizes.transformer / GIB:.2f} GiB bf16, {sizes.transformer_fp8 / GIB:.2f} GiB fp8; "
      f"Gemma-3-12B {sizes.gemma / GIB:.2f} GiB; reserve for the CUDA runtime {p.RUNTIME_RESERVE_BYTES / GIB:.0f} GiB.")
print()
print("Always in CPU memory: the prompt cache (256 prompts, 3 GiB), LoRA files (the dev pipeline's distilled LoRA, "
      f"{sizes.distilled_lora / GIB:.1f} GiB) and the pinned copy that undoes a LoRA delta "
      f"({sizes.lora_touched / GIB:.1f} GiB bf16, {sizes.lora_touched_fp8 / GIB:.1f} GiB fp8).")
print()
print("| GPU | pipeline | weights | size | clip | fits | peak GiB | also on the CPU | why not |")
print("|---|---|---|---|---|---|---:|---|---|")
for gpu, total in (("H100 80 GB", 79.6), ("H200 141 GB", 139.8)):
    for pipeline in ("distilled", "dev"):
        for fp8 in (False, True):
            for label, (w, h) in (("720p", (1280, 768)), ("1080p", (1920, 1088))):
                for seconds, frames in ((5, 121), (10, 241), (20, 481)):
                    plan = p.make_plan(pipeline, int(total * GIB), fp8, w, h, frames, sizes=sizes)
                    weights = "fp8 (forced)" if plan.fp8_forced else ("fp8" if plan.fp8 else "bf16")
                    cpu = ", ".join(c.name for c in plan.components  # beyond what always waits there
                                   if c.placement == "cpu" and c.name not in p.ALWAYS_CPU | {"prompt_cache"}) or "–"
                    why = "" if plan.fits else f"short by {plan.shortfall_bytes / GIB:.1f} GiB at {max(plan.phases, key=plan.phases.get)}"
                    print(f"| {gpu} | {pipeline} | {weights} | {label} {w}×{h} | {seconds} s ({frames}) | "
                          f"{'yes' if plan.fits else '**no**'} | {plan.peak_bytes / GIB:.1f} | {cpu} | {why} |")
print()
print("What each mode and preset needs (bf16; the peak of the phases it runs; the engine's plan is the")
print("largest of them, as it serves every mode):")
print()
print("| GPU | pipeline | size | clip | text/image → video | keyframes (8) | audio-to-video | retake | best (HQ, res_2s) |")
print("|---|---|---|---|---:|---:|---:|---:|---:|")
standard = ("encode_prompt", "stage_1", "lora_delta", "stage_2", "decode")
needs = {"keyframes": standard + ("keyframes_stage_1", "keyframes_stage_2"),
         "audio": standard + ("encode_audio",),
         "retake": ("encode_prompt", "lora_delta", "stage_2", "decode", "encode_video", "encode_audio"),
         "best": standard + ("best_stage_1", "best_stage_2")}
for gpu, total in (("H100 80 GB", 79.6), ("H200 141 GB", 139.8)):
    for pipeline in ("distilled", "dev"):
        for label, (w, h) in (("720p", (1280, 768)), ("1080p", (1920, 1088))):
            for seconds, frames in ((5, 121), (20, 481)):
                plan = p.make_plan(pipeline, int(total * GIB), False, w, h, frames, sizes=sizes)
                peak = lambda names: f"{max(plan.phases[n] for n in names if n in plan.phases) / GIB:.1f}"
                best = peak(needs["best"]) if pipeline == "dev" else "– (dev weights)"
                print(f"| {gpu} | {pipeline} | {label} | {seconds} s | {peak(standard)} | {peak(needs['keyframes'])} | "
                      f"{peak(needs['audio'])} | {peak(needs['retake'])} | {best} |")
PY
