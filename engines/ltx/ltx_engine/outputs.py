"""Writes a result for the Rust worker to encode: raw RGB frames and interleaved stereo float32
audio at 48 kHz. The worker muxes them with the same encoder every engine uses."""

from pathlib import Path

import torch

AUDIO_RATE = 48_000


def write(out_dir: Path, frames: torch.Tensor, audio) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    count, height, width, channels = frames.shape
    if channels != 3 or frames.dtype != torch.uint8:
        raise RuntimeError(f"the decoder returned {tuple(frames.shape)} {frames.dtype}, not uint8 RGB frames")
    frames_path = out_dir / "frames.rgb"
    frames_path.write_bytes(frames.contiguous().numpy().tobytes())
    result = {"frames": {"path": str(frames_path), "width": width, "height": height, "count": count}, "audio": None}
    if audio is not None:
        waveform = audio.waveform.detach().to("cpu", torch.float32)
        if waveform.dim() == 3:
            waveform = waveform[0]
        if waveform.shape[0] == 1:
            waveform = waveform.repeat(2, 1)
        if audio.sampling_rate != AUDIO_RATE:
            import torchaudio

            waveform = torchaudio.functional.resample(waveform, audio.sampling_rate, AUDIO_RATE)
        audio_path = out_dir / "audio.f32"
        audio_path.write_bytes(waveform[:2].clamp(-1, 1).t().contiguous().numpy().tobytes())
        result["audio"] = {"path": str(audio_path), "sample_rate": AUDIO_RATE, "channels": 2}
    return result
