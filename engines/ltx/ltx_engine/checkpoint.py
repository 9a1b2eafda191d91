"""The checkpoint opened once for the engine's whole start-up.

ltx-core's `ModelLedger` gives each component (transformer, video VAE encoder and decoder, audio
VAE, vocoder, text projection) a builder that opens the checkpoint twice, for its config and for
its weights, and `detect_params` opens it once more. `OneOpenCheckpoint` serves all of them from
one handle, with the same steps as ltx-core's `SafetensorsStateDictLoader` (key filter, renaming,
value operations), so each component still reads only its own tensors, once. The handle is closed
after start-up: nothing reads the checkpoint again (LoRA sets are applied from saved base weights).
"""

import dataclasses
import json

import safetensors
import torch
from ltx_core.loader import SDOps, SingleGPUModelBuilder, StateDict
from ltx_core.loader.sft_loader import SafetensorsModelStateDictLoader
from ltx_pipelines.utils.constants import _LTX_2_3_MODEL_VERSION_PREFIX, LTX_2_3_PARAMS, LTX_2_PARAMS


class OneOpenCheckpoint(SafetensorsModelStateDictLoader):
    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.handle = safetensors.safe_open(path, framework="pt")
        self.header = self.handle.metadata() or {}

    def close(self) -> None:
        self.handle = None

    def pipeline_params(self):
        """`ltx_pipelines.utils.constants.detect_params`, from the open handle."""
        version = self.header.get("model_version", "")
        return LTX_2_3_PARAMS if version.startswith(_LTX_2_3_MODEL_VERSION_PREFIX) else LTX_2_PARAMS

    def metadata(self, path: str) -> dict:
        if path != self.path:
            return super().metadata(path)
        return json.loads(self.header["config"]) if "config" in self.header else {}

    def load(self, path: str | list[str], sd_ops: SDOps | None = None, device: torch.device | None = None) -> StateDict:
        if (path if isinstance(path, list) else [path]) != [self.path]:
            return super().load(path, sd_ops, device)
        if self.handle is None:
            raise RuntimeError("the checkpoint is read at start-up only")
        device = device or torch.device("cpu")
        sd, size, dtypes = {}, 0, set()
        for name in self.handle.keys():
            expected = name if sd_ops is None else sd_ops.apply_to_key(name)
            if expected is None:
                continue
            value = self.handle.get_tensor(name).to(device=device, non_blocking=True, copy=False)
            pairs = ((expected, value),) if sd_ops is None else sd_ops.apply_to_key_value(expected, value)
            for key, tensor in pairs:
                size += tensor.nbytes
                dtypes.add(tensor.dtype)
                sd[key] = tensor
        return StateDict(sd=sd, device=device, size=size, dtype=dtypes)


def share(ledger, loader: OneOpenCheckpoint) -> None:
    """Points every builder of `ledger` that reads the checkpoint at `loader`."""
    for name, builder in list(vars(ledger).items()):
        if isinstance(builder, SingleGPUModelBuilder) and builder.model_path == loader.path:
            setattr(ledger, name, dataclasses.replace(builder, model_loader=loader))
