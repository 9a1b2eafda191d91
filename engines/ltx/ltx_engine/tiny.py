"""Makes a tiny random-weight LTX-2.3-shaped model set for tests on the CPU.

Same files and layout as the real release — one bundled checkpoint whose safetensors metadata
carries `config` and `model_version`, a Gemma-3 directory (config.json, tokenizer.model,
preprocessor_config.json, model.safetensors), a spatial upsampler and a distilled LoRA — with
tiny widths and layers. The fixed parts of the architecture are kept: 128 latent channels,
the 32× spatial / 8× temporal video VAE, the 8-channel × 16-bin audio latent, the stereo
64-mel vocoder with 16 → 48 kHz bandwidth extension. Nothing is downloaded: the tokenizer is
trained here with sentencepiece.

    python -m ltx_engine.tiny OUT_DIR
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

GEMMA_HIDDEN = 32
GEMMA_LAYERS = 2

TRANSFORMER = {
    "_class_name": "AVTransformer3DModel",
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "in_channels": 128,
    "out_channels": 128,
    "num_layers": 2,
    "cross_attention_dim": 32,
    "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 8,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_cross_attention_dim": 16,
    "caption_channels": GEMMA_HIDDEN,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20],
    "rope_type": "split",
    "frequencies_precision": "float64",
    "apply_gated_attention": True,
    "cross_attention_adaln": True,
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
    "connector_num_attention_heads": 2,
    "connector_attention_head_dim": 16,
    "connector_num_layers": 1,
    "connector_apply_gated_attention": True,
    "audio_connector_num_attention_heads": 2,
    "audio_connector_attention_head_dim": 8,
    "audio_connector_num_layers": 1,
    "connector_num_learnable_registers": 8,
    "connector_positional_embedding_max_pos": [4096],
}

VAE = {
    "dims": 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "patch_size": 4,
    "norm_layer": "pixel_norm",
    "latent_log_var": "uniform",
    "spatial_padding_mode": "zeros",
    "causal_decoder": False,
    "timestep_conditioning": False,
    "decoder_base_channels": 8,
    "encoder_blocks": [
        ["res_x", {"num_layers": 1}],
        ["compress_space_res", {"multiplier": 1}],
        ["res_x", {"num_layers": 1}],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
    ],
    "decoder_blocks": [
        ["res_x", {"num_layers": 1}],
        ["compress_all", {"multiplier": 2, "residual": True}],
        ["compress_all", {"multiplier": 2, "residual": True}],
        ["compress_all", {"multiplier": 2, "residual": True}],
        ["res_x", {"num_layers": 1}],
    ],
}

AUDIO_VAE = {
    "model": {
        "params": {
            "sampling_rate": 16000,
            "ddconfig": {
                "ch": 128,
                "out_ch": 2,
                "in_channels": 2,
                "ch_mult": [1, 1, 1],
                "num_res_blocks": 1,
                "attn_resolutions": [],
                "resolution": 256,
                "z_channels": 8,
                "double_z": True,
                "mel_bins": 64,
                "mid_block_add_attention": False,
                "norm_type": "pixel",
                "causality_axis": "height",
            },
        }
    },
    "preprocessing": {"stft": {"hop_length": 160, "causal": True}, "mel": {"n_mel_channels": 64}},
}


def _generator(rates: list[int], kernels: list[int]) -> dict:
    return {
        "resblock": "AMP1",
        "stereo": True,
        "activation": "snakebeta",
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "upsample_rates": rates,
        "upsample_kernel_sizes": kernels,
        "upsample_initial_channel": 32,
        "use_tanh_at_final": False,
        "use_bias_at_final": False,
    }


VOCODER = {
    "vocoder": _generator([5, 4, 2, 2, 2], [15, 8, 4, 4, 4]),
    "bwe": {
        **_generator([5, 4, 3, 2, 2], [15, 8, 7, 4, 4]),
        "input_sampling_rate": 16000,
        "output_sampling_rate": 48000,
        "n_fft": 512,
        "hop_length": 80,
        "num_mels": 64,
    },
}

CONFIG = {"transformer": TRANSFORMER, "vae": VAE, "audio_vae": AUDIO_VAE, "vocoder": VOCODER}
UPSAMPLER = {"in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
             "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0}

# Gemma's token ids for the specials the processor and LTX's prompt code look up.
SPECIAL_TOKENS = ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"]
VOCAB_SIZE = 320

# Gemma-3's chat format, shortened (the system prompt opens the first user turn; an image is its
# start token, which the processor expands): the official prompt enhancement renders its
# messages with it.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set first = messages[0]['content'] -%}"
    "{%- set rest = messages[1:] -%}{%- else -%}{%- set first = '' -%}{%- set rest = messages -%}{%- endif -%}"
    "{%- for message in rest -%}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{%- if loop.first and first %}{{ first }}\n\n{% endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}<start_of_image>{%- elif item['type'] == 'text' -%}{{ item['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}<end_of_turn>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<start_of_turn>model\n{%- endif -%}"
)


def gemma_config():
    from transformers import Gemma3Config

    return Gemma3Config(
        text_config={
            "hidden_size": GEMMA_HIDDEN, "intermediate_size": 64, "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "query_pre_attn_scalar": 16,
            "vocab_size": VOCAB_SIZE, "sliding_window": 16, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "max_position_embeddings": 2048,
        },
        vision_config={
            "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "image_size": 224, "patch_size": 14, "vision_use_head": False,
        },
        # The 256 image tokens Gemma3Processor (as ltx-core builds it) puts in a prompt with an
        # image: 16 × 16 patches of 14 pixels, pooled 1:1.
        mm_tokens_per_image=256,
        boi_token_index=4, eoi_token_index=5, image_token_index=6, eos_token_id=[1, 8],
    )


def _train_tokenizer(out: Path) -> None:
    import sentencepiece as spm
    from transformers import GemmaTokenizerFast

    words = ("a red fox runs through a snowy forest at dawn the camera slowly pans across a calm lake "
             "city lights at night rain falls on a window close up of a cat sleeping on a sofa").split()
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(len(words))))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out / "tokenizer"), vocab_size=VOCAB_SIZE, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=SPECIAL_TOKENS, byte_fallback=True,
        character_coverage=1.0, minloglevel=2,
    )
    corpus.unlink()
    (out / "tokenizer.vocab").unlink()
    tok = GemmaTokenizerFast(
        vocab_file=str(out / "tokenizer.model"),
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)


def make_gemma(out: Path) -> None:
    from transformers import Gemma3ForConditionalGeneration, Gemma3ImageProcessor

    out.mkdir(parents=True, exist_ok=True)
    config = gemma_config()
    config.save_pretrained(out)
    _train_tokenizer(out)
    Gemma3ImageProcessor(size={"height": 224, "width": 224}).save_pretrained(out)
    model = Gemma3ForConditionalGeneration(config)
    # The layout of Google's published Gemma-3 checkpoints, which LTX's loader expects.
    renames = {"model.language_model.": "language_model.model.", "model.vision_tower.": "vision_tower.",
               "model.multi_modal_projector.": "multi_modal_projector."}
    tensors = {}
    for key, value in model.state_dict().items():
        for old, new in renames.items():
            if key.startswith(old):
                tensors[new + key[len(old):]] = value.contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def _random_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's weights, with buffers the checkpoint normally supplies given sane values."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, value in module.state_dict().items():
        if "std-of-means" in key:
            value = torch.ones_like(value)
        elif "mean-of-means" in key:
            value = torch.zeros_like(value)
        elif "mel_basis" in key:
            value = torch.rand(value.shape, generator=generator) / value.shape[-1]
        elif not torch.isfinite(value).all() or value.abs().max() > 1e6:
            value = torch.randn(value.shape, generator=generator) * 0.02
        state[key] = value.contiguous().to(torch.bfloat16) if value.is_floating_point() else value.contiguous()
    return state


def make_checkpoint(path: Path) -> None:
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, AudioEncoderConfigurator, VocoderConfigurator
    from ltx_core.model.transformer import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import EmbeddingsProcessorConfigurator

    torch.manual_seed(0)
    # Where each component's weights live in the published bundle (ltx_core's *_KEYS_FILTER maps).
    parts = [
        (LTXModelConfigurator, "model.diffusion_model.", {}),
        (VideoEncoderConfigurator, "vae.encoder.", {"per_channel_statistics.": "vae.per_channel_statistics."}),
        (VideoDecoderConfigurator, "vae.decoder.", {"per_channel_statistics.": "vae.per_channel_statistics."}),
        (AudioEncoderConfigurator, "audio_vae.encoder.",
         {"per_channel_statistics.": "audio_vae.per_channel_statistics."}),
        (AudioDecoderConfigurator, "audio_vae.decoder.",
         {"per_channel_statistics.": "audio_vae.per_channel_statistics."}),
        (VocoderConfigurator, "vocoder.", {}),
        (EmbeddingsProcessorConfigurator, "", {
            "feature_extractor.": "text_embedding_projection.",
            "video_connector.": "model.diffusion_model.video_embeddings_connector.",
            "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
        }),
    ]
    tensors = {}
    for configurator, prefix, special in parts:
        for key, value in _random_state(configurator.from_config(CONFIG)).items():
            target = next((new + key[len(old):] for old, new in special.items() if key.startswith(old)), prefix + key)
            tensors.setdefault(target, value)
    metadata = {"config": json.dumps(CONFIG), "model_version": "2.3.0-tiny"}
    save_file(tensors, str(path), metadata=metadata)


def make_upsampler(path: Path) -> None:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    model = LatentUpsamplerConfigurator.from_config(UPSAMPLER)
    save_file(_random_state(model), str(path), metadata={"config": json.dumps(UPSAMPLER)})


def make_lora(path: Path, checkpoint: Path, rank: int = 2, scale: float = 0.05) -> None:
    """A LoRA over every linear layer of the tiny transformer's blocks, in ComfyUI's key format."""
    from safetensors import safe_open

    generator = torch.Generator().manual_seed(1)
    tensors = {}
    with safe_open(str(checkpoint), framework="pt") as f:
        for key in f.keys():
            if not (key.startswith("model.diffusion_model.transformer_blocks.") and key.endswith(".weight")):
                continue
            shape = f.get_slice(key).get_shape()
            if len(shape) != 2:
                continue
            name = "diffusion_model." + key[len("model.diffusion_model."):-len(".weight")]
            tensors[f"{name}.lora_A.weight"] = (torch.randn(rank, shape[1], generator=generator) * scale).to(torch.bfloat16)
            tensors[f"{name}.lora_B.weight"] = (torch.randn(shape[0], rank, generator=generator) * scale).to(torch.bfloat16)
    save_file(tensors, str(path))


def make_all(out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "checkpoint": out / "ltx-2.3-tiny-distilled.safetensors",
        "gemma": out / "gemma",
        "spatial_upsampler": out / "ltx-2.3-tiny-spatial-upscaler-x2.safetensors",
        "distilled_lora": out / "ltx-2.3-tiny-distilled-lora.safetensors",
        "style_lora": out / "tiny-style-lora.safetensors",
    }
    make_gemma(paths["gemma"])
    # The text projection's input width is Gemma's (layers + 1) × hidden size, as the engine reads it.
    from .setup import apply_gemma_shape

    apply_gemma_shape(paths["gemma"] / "config.json")
    make_checkpoint(paths["checkpoint"])
    make_upsampler(paths["spatial_upsampler"])
    make_lora(paths["distilled_lora"], paths["checkpoint"])
    make_lora(paths["style_lora"], paths["checkpoint"], scale=0.2)
    return {k: str(v) for k, v in paths.items()}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ltx_engine.tiny OUT_DIR")
    print(json.dumps(make_all(Path(sys.argv[1])), indent=2))
