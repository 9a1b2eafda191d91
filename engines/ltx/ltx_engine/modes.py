"""The additive modes' inputs and the quality presets, as the engine reads them.

A mode says which official pipeline's conditioning a job runs with:
  standard        text/image-to-video (`ti2vid_two_stages` / `distilled`): images replace the first
                  latent or are appended as keyframes (`combined_image_conditionings`)
  keyframes       `KeyframeInterpolationPipeline`: every image is a guiding latent at its frame
                  (`image_conditionings_by_adding_guiding_latent`)
  audio_to_video  `A2VidPipelineTwoStage`: the audio is encoded once and held as a frozen latent
                  (denoise mask 0) while only the video is denoised; the output audio is the input's
  retake          `RetakePipeline`: the video (and its audio) encoded, `TemporalRegionMask` keeps the
                  latents outside [start, end) and regenerates those inside, one full-size stage

A preset says how each stage samples (`PRESETS`): fast is the distilled pipeline, balanced the
dev two-stage one, best the HQ two-stage one (res_2s, the distilled LoRA at 0.25 / 0.5).
"""

from dataclasses import dataclass, field

import torch
from ltx_pipelines.utils.args import ImageConditioningInput

MODES = ("standard", "keyframes", "audio_to_video", "retake")

# The presets each loaded pipeline can run: the distilled checkpoint only samples the distilled
# way; the dev checkpoint with its distilled LoRA runs both guided two-stage pipelines.
PRESETS = {"distilled": ("fast",), "dev": ("balanced", "best")}
DEFAULT_PRESET = {"distilled": "fast", "dev": "balanced"}

# The official HQ pipeline's distilled-LoRA strengths (`hq_2_stage_arg_parser`'s defaults).
HQ_DISTILLED_LORA_STAGE_1 = 0.25
HQ_DISTILLED_LORA_STAGE_2 = 0.5


@dataclass
class Mode:
    kind: str = "standard"
    keyframes: list[ImageConditioningInput] = field(default_factory=list)
    audio: str | None = None
    video: str | None = None
    start_frame: int = 0
    end_frame: int = 0
    regenerate_video: bool = True
    regenerate_audio: bool = True

    @classmethod
    def parse(cls, message: dict | None) -> "Mode":
        """The command's `mode` object (absent: standard). Raises KeyError/TypeError/ValueError."""
        if not message:
            return cls()
        kind = str(message["kind"])
        if kind not in MODES:
            raise ValueError(f"unknown mode {kind!r}")
        if kind == "keyframes":
            return cls(kind, keyframes=[ImageConditioningInput(str(k["path"]), int(k["frame_idx"]),
                                                               float(k.get("strength", 1.0)))
                                        for k in message["keyframes"]])
        if kind == "audio_to_video":
            return cls(kind, audio=str(message["audio"]))
        if kind == "retake":
            return cls(kind, video=str(message["video"]), start_frame=int(message["start_frame"]),
                       end_frame=int(message["end_frame"]),
                       regenerate_video=bool(message.get("regenerate_video", True)),
                       regenerate_audio=bool(message.get("regenerate_audio", True)))
        return cls()


def check_mode(mode: Mode, num_frames: int) -> str | None:
    """Why the mode's inputs do not fit a clip of `num_frames` (None: they do)."""
    if mode.kind == "keyframes":
        frames = [k.frame_idx for k in mode.keyframes]
        if len(frames) < 2:
            return "keyframes needs at least two images"
        if any(not 0 <= f < num_frames for f in frames):
            return f"a keyframe is outside the clip's {num_frames} frames"
        if frames != sorted(set(frames)):
            return "keyframes must be at distinct, ascending frames"
    if mode.kind == "retake" and not 0 <= mode.start_frame < mode.end_frame <= num_frames:
        return f"the retake span [{mode.start_frame}, {mode.end_frame}) is not inside the clip's {num_frames} frames"
    return None


def load_video_on_canvas(path: str, width: int, height: int, num_frames: int, dtype, device) -> torch.Tensor:
    """A video's first `num_frames` frames as the VAE's input (1, 3, F, H, W) in [-1, 1].

    A frame smaller than the canvas is placed in its centre with its edge rows and columns
    repeated outwards — how the worker extends an image (src/worker/engines/ltx/canvas.rs), so
    the part the worker crops back is exactly the input; any other size is resized to cover the
    canvas and centre-cropped (`resize_and_center_crop`, as the official retake loads a video).
    A video shorter than the clip repeats its last frame."""
    from ltx_pipelines.utils.media_io import decode_video_from_file, normalize_latent, resize_and_center_crop

    frames = []
    for frame in decode_video_from_file(path=path, frame_cap=num_frames, device="cpu"):
        frames.append(_on_canvas(frame[0], width, height, resize_and_center_crop))
    if not frames:
        raise FileNotFoundError(f"{path} has no video frames")
    frames += [frames[-1]] * (num_frames - len(frames))
    video = torch.cat(frames, dim=2)  # (1, 3, F, H, W), 0..255
    return normalize_latent(video, device, dtype)


def _on_canvas(frame: torch.Tensor, width: int, height: int, resize_and_center_crop) -> torch.Tensor:
    h, w, _ = frame.shape
    if w <= width and h <= height:
        left, top = (width - w) // 2, (height - h) // 2
        chw = frame.permute(2, 0, 1).to(torch.float32).unsqueeze(0)
        padded = torch.nn.functional.pad(chw, (left, width - w - left, top, height - h - top), mode="replicate")
        return padded.unsqueeze(2)  # (1, 3, 1, H, W)
    return resize_and_center_crop(frame.to(torch.float32), height, width)


def load_audio(path: str, seconds: float, device):
    """A file's audio (`decode_audio_from_file`) as stereo, its first `seconds`, zero-padded to
    them; None when the file has no audio stream."""
    from ltx_core.types import Audio
    from ltx_pipelines.utils.media_io import decode_audio_from_file

    audio = decode_audio_from_file(path, device, 0.0, seconds)
    if audio is None:
        return None
    waveform = audio.waveform  # (1, channels, samples)
    if waveform.shape[1] == 1:
        waveform = waveform.repeat(1, 2, 1)  # the audio VAE is stereo
    waveform = waveform[:, :2]
    wanted = round(seconds * audio.sampling_rate)
    if waveform.shape[-1] < wanted:
        waveform = torch.nn.functional.pad(waveform, (0, wanted - waveform.shape[-1]))
    return Audio(waveform=waveform[..., :wanted].float(), sampling_rate=audio.sampling_rate)


def fit_latent_frames(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """An audio latent (B, C, T, M) cut or zero-padded to `frames` (the official retake's trim/pad)."""
    if latent.shape[2] >= frames:
        return latent[:, :, :frames]
    pad = torch.zeros(*latent.shape[:2], frames - latent.shape[2], latent.shape[3], device=latent.device,
                      dtype=latent.dtype)
    return torch.cat([latent, pad], dim=2)
