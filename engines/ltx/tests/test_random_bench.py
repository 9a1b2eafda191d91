"""`ltx_engine.bench --random-weights` keeps working: the tiny config on the CPU, both pipelines, and
the full-size config builds (on the meta device, where it allocates nothing) with the real sizes."""

import io
import json
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import torch

from ltx_engine import bench, plan, random_bench


class RandomWeightBenchTest(unittest.TestCase):
    def test_tiny_config_on_the_cpu_times_every_phase(self):
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / "results.json"
            printed = io.StringIO()
            with redirect_stdout(printed):
                code = bench.main(["--random-weights", "--config", "tiny", "--device", "cpu", "--cases", "128x128x9",
                                   "--runs", "1", "--dev-steps", "2", "--out", str(out)])
            self.assertEqual(code, 0)
            results = json.loads(out.read_text())
        self.assertEqual([c["pipeline"] for c in results["cases"]], ["distilled", "dev"])
        for case in results["cases"]:
            seconds = case["median_seconds"]
            for phase in ("stage_1", "upsample", "stage_2", "decode", "style_switch"):
                self.assertGreater(seconds[phase], 0, (case["pipeline"], phase))
        self.assertGreater(results["cases"][1]["median_seconds"]["lora_delta"], 0)  # dev only
        self.assertIn("| dev | 128×128 | 9 |", printed.getvalue())

    def test_a_style_switch_is_undone_exactly(self):
        linears = [torch.nn.Linear(8, 16).to(torch.bfloat16) for _ in range(3)]
        before = [l.weight.detach().clone() for l in linears]
        delta = random_bench.Delta(linears, rank=4, undo_device=torch.device("cpu"), seed=1)
        delta.apply()
        self.assertFalse(all(torch.equal(l.weight, b) for l, b in zip(linears, before)))
        delta.undo()
        self.assertTrue(all(torch.equal(l.weight, b) for l, b in zip(linears, before)))

    def test_the_full_size_config_builds_with_the_planned_sizes(self):
        config = random_bench.load_config("full")
        from ltx_core.model.transformer import LTXModelConfigurator

        model = random_bench.materialise(lambda: LTXModelConfigurator.from_config(config), torch.device("meta"), 0)
        size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        self.assertEqual(size, plan.sizes_from_config(config).transformer)
        random_bench.cast_fp8(model)
        fp8 = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        self.assertEqual(fp8, plan.sizes_from_config(config).transformer_fp8)


if __name__ == "__main__":
    unittest.main()
