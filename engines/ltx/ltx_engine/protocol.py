"""The engine protocol, version 2: one JSON object per line. Version 2 added `mode`, `quality`,
`enhance_prompt`, the `enhance` command, `presets` in `hello` and `enhanced_prompt` in `result`.

Worker → engine (stdin):
  {"type": "generate", "id", "pipeline" (distilled | dev; must be the one loaded), "prompt", "seed", "width", "height", "num_frames", "fps",
   "images": [{"path", "frame_idx", "strength"}], "loras": [{"path", "strength", "style_id"?}],
   "audio": bool, "out_dir", "preview": bool (optional: send `intermediate` after stage 1),
   "mode": (optional, default standard) {"kind": "standard"}
         | {"kind": "keyframes", "keyframes": [{"path", "frame_idx", "strength"}]}
         | {"kind": "audio_to_video", "audio": path}
         | {"kind": "retake", "video": path, "start_frame", "end_frame" (exclusive),
            "regenerate_video": bool, "regenerate_audio": bool},
   "quality": fast | balanced | best | null (the pipeline's own; one of hello's `presets`),
   "enhance_prompt": bool (rewrite the prompt first; the result says what was used)}
   (a LoRA's `style_id` names it in the LoRA-set key; without one its path does)
  {"type": "enhance", "id", "prompt", "image": path | null, "seed"}   → `enhanced` or `error`
  {"type": "cancel", "id"}
  {"type": "shutdown"}

Engine → worker (stdout; everything else the process prints goes to stderr):
  {"type": "hello", "protocol": 2, "engine", "versions": {...}, "device", "memory": {...}, "pipeline",
   "resident_style_set": "", "presets": ["fast"]}
  {"type": "progress", "id", "stage", "step", "total"}
  {"type": "intermediate", "id", "frames": {"path", "width", "height", "count"}}   (asked for with
   "preview": stage 1's half-size clip, decoded from its latents; the result follows)
  {"type": "result", "id", "frames": {"path", "width", "height", "count"},
   "audio": {"path", "sample_rate", "channels"} | null, "timings": {...}, "resident_style_set",
   "enhanced_prompt": str | null}
  {"type": "enhanced", "id", "prompt"}
  `resident_style_set` is the LoRA set the transformer holds now, keyed as the scheduler keys a
  job's styles (`style_set_key` in src/store/codec.rs and ltx_engine/loras.py): "id@strength"
  sorted, joined by ","; "" for none.
  {"type": "error", "id" | null, "code", "message"}   code: invalid_input | out_of_memory |
                                                      engine_error | cancelled
"""

import json
import sys
import threading

PROTOCOL_VERSION = 2

# The protocol owns the real stdout; libraries that print (tqdm, warnings) are sent to stderr.
_out = sys.stdout
sys.stdout = sys.stderr
_lock = threading.Lock()


def send(message: dict) -> None:
    line = json.dumps(message, separators=(",", ":"))
    with _lock:
        _out.write(line + "\n")
        _out.flush()


class EngineFailure(Exception):
    """A failure with one of the protocol's error codes."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Cancelled(EngineFailure):
    def __init__(self) -> None:
        super().__init__("cancelled", "cancelled by the worker")
