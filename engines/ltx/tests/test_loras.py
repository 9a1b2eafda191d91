"""LoRA sets on a resident model, without the tiny checkpoint: the set's key matches the
scheduler's, a swap equals ltx-core's own fusion, undoing is exact, and a swap cut short leaves
the base model."""

import tempfile
import unittest
from pathlib import Path

import torch
from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraStateDictWithStrength, StateDict, apply_loras
from ltx_core.loader.sft_loader import SafetensorsStateDictLoader
from safetensors.torch import save_file

from ltx_engine.loras import LoraFiles, LoraRef, ResidentLoras, format_strength, normalise, style_set_key
from ltx_engine.protocol import Cancelled


def ref(id_: str, strength: float) -> LoraRef:
    return LoraRef(id_, f"/styles/{id_}.safetensors", strength)


class StyleSetKeyTest(unittest.TestCase):
    def test_strengths_are_written_as_rust_writes_an_f64(self):
        cases = {0.5: "0.5", 1.0: "1", 0.8: "0.8", 2.0: "2", 1e-7: "0.0000001", 0.1 + 0.2: "0.30000000000000004",
                 -0.25: "-0.25", 1e21: "1000000000000000000000", 1.5e-5: "0.000015"}
        for value, text in cases.items():
            self.assertEqual(format_strength(value), text, value)

    def test_the_key_is_the_schedulers(self):
        # The same pairs as src/store/codec.rs `a_style_set_key_ignores_order_but_not_strength`.
        self.assertEqual(style_set_key([]), "")
        self.assertEqual(style_set_key([ref("b", 1.0), ref("a", 0.5)]), "a@0.5,b@1")
        self.assertNotEqual(style_set_key([ref("a", 0.5)]), style_set_key([ref("a", 0.6)]))

    def test_order_zeros_and_duplicates_do_not_make_another_set(self):
        self.assertEqual(style_set_key([ref("a", 0.5), ref("b", 0.3)]), style_set_key([ref("b", 0.3), ref("a", 0.5)]))
        self.assertEqual(style_set_key([ref("a", 0.5), ref("b", 0.0)]), "a@0.5")
        self.assertEqual(style_set_key([ref("a", 0.0)]), "")
        self.assertEqual(style_set_key([ref("a", 0.25), ref("b", 1.0), ref("a", 0.25)]), "a@0.5,b@1")
        self.assertEqual(style_set_key([ref("a", 0.5), ref("a", -0.5)]), "", "strengths that cancel leave no LoRA")
        self.assertEqual(normalise([ref("b", 0.3), ref("a", 0.5)]), normalise([ref("a", 0.5), ref("b", 0.3)]))

    def test_sorted_as_the_scheduler_sorts_its_strings(self):
        # Sorted by id, as Rust's style_set_key_of: "a" < "a-b".
        self.assertEqual(style_set_key([ref("a-b", 1.0), ref("a", 1.0)]), "a@1,a-b@1")
        # Duplicates add in ascending order whatever the request's order (0.1 + 0.2 + 0.7 = 1 in
        # f64; 0.7 + 0.2 + 0.1 is 0.9999999999999999), as Rust does.
        for order in ([0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]):
            self.assertEqual(style_set_key([ref("a", s) for s in order]), "a@1")


class Tiny(torch.nn.Module):
    """Two linear layers named as in the LTX transformer, one a LoRA does not touch."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.proj_in = torch.nn.Linear(16, 32, dtype=torch.bfloat16)
        self.proj_out = torch.nn.Linear(32, 8, dtype=torch.bfloat16)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))


def write_lora(path: Path, seed: int, layers=("proj_in", "proj_out"), rank: int = 4) -> str:
    generator = torch.Generator().manual_seed(seed)
    shapes = {"proj_in": (32, 16), "proj_out": (8, 32)}
    tensors = {}
    for layer in layers:
        out_features, in_features = shapes[layer]
        tensors[f"diffusion_model.{layer}.lora_A.weight"] = torch.randn(rank, in_features, generator=generator).bfloat16()
        tensors[f"diffusion_model.{layer}.lora_B.weight"] = torch.randn(out_features, rank, generator=generator).bfloat16()
    save_file(tensors, str(path))
    return str(path)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def ltx_core_fusion(base: dict[str, torch.Tensor], loras: list[tuple[str, float]]) -> dict[str, torch.Tensor]:
    """What `SingleGPUModelBuilder.build` makes of the base weights with these LoRAs."""
    loaded = [LoraStateDictWithStrength(SafetensorsStateDictLoader().load(path, LTXV_LORA_COMFY_RENAMING_MAP), s)
              for path, s in loras]
    model_sd = StateDict({k: v.clone() for k, v in base.items()}, torch.device("cpu"), 0, {torch.bfloat16})
    return apply_loras(model_sd, loaded, dtype=torch.bfloat16).sd


class ResidentLorasTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.a = write_lora(Path(self.dir.name) / "a.safetensors", 1)
        self.b = write_lora(Path(self.dir.name) / "b.safetensors", 2, layers=("proj_in",))
        self.model = Tiny()
        self.base = weights(self.model)
        self.loras = ResidentLoras(self.model, LoraFiles(budget_bytes=1 << 20))

    def tearDown(self):
        self.dir.cleanup()

    def assert_weights(self, expected: dict[str, torch.Tensor]):
        for key, value in weights(self.model).items():
            self.assertTrue(torch.equal(value, expected[key]), key)

    def test_a_set_is_ltx_cores_fusion_and_switching_back_is_exact(self):
        set_a = (LoraRef("a", self.a, 0.8),)
        set_b = (LoraRef("b", self.b, 0.5),)
        self.loras.apply(set_a)
        fused_a = ltx_core_fusion(self.base, [(self.a, 0.8)])
        self.assert_weights(fused_a)
        self.assertFalse(torch.equal(fused_a["proj_in.weight"], self.base["proj_in.weight"]), "the LoRA changes W")
        self.loras.apply(set_b)
        self.assert_weights(ltx_core_fusion(self.base, [(self.b, 0.5)]))
        self.assertTrue(torch.equal(self.model.proj_out.weight, self.base["proj_out.weight"]), "A's other layer undone")
        self.loras.apply(set_a)
        self.assert_weights(fused_a)
        self.loras.apply(())
        self.assert_weights(self.base)

    def test_several_loras_fuse_as_ltx_core_fuses_them(self):
        both = normalise([LoraRef("b", self.b, 0.5), LoraRef("a", self.a, 0.8)])
        self.loras.apply(both)
        self.assert_weights(ltx_core_fusion(self.base, [(self.a, 0.8), (self.b, 0.5)]))

    def test_a_swap_cut_short_leaves_the_base_model(self):
        self.loras.apply((LoraRef("b", self.b, 0.5),))
        calls = []

        def cancel_on_second_tensor():
            calls.append(1)
            if len(calls) == 2:
                raise Cancelled()

        with self.assertRaises(Cancelled):
            self.loras.apply((LoraRef("a", self.a, 0.8),), cancel_on_second_tensor)
        self.assert_weights(self.base)
        self.assertEqual(self.loras.applied, ())
        self.loras.apply((LoraRef("a", self.a, 0.8),))
        self.assert_weights(ltx_core_fusion(self.base, [(self.a, 0.8)]))

    def test_lora_files_are_read_once_while_they_fit(self):
        self.loras.apply((LoraRef("a", self.a, 0.8),))
        self.loras.apply((LoraRef("a", self.a, 0.4),))
        self.loras.apply(())
        self.loras.apply((LoraRef("a", self.a, 0.8),))
        self.assertEqual(self.loras.files.reads, 1)

    def test_lora_files_beyond_the_budget_are_dropped_unless_in_use(self):
        files = LoraFiles(budget_bytes=1)
        loras = ResidentLoras(Tiny(), files)
        loras.apply((LoraRef("a", self.a, 0.8),))
        self.assertEqual(list(files.entries), [self.a], "the file in use stays")
        loras.apply((LoraRef("b", self.b, 0.8),))
        self.assertEqual(list(files.entries), [self.b])


if __name__ == "__main__":
    unittest.main()
