"""The fused-transformer cache keeps within its byte budget, least recently used first, and
never drops the transformer just asked for."""

import unittest

import torch

from ltx_engine.resident import TransformerCache


def model_of(megabytes: int) -> torch.nn.Module:
    return torch.nn.Linear(megabytes * 1024 * 256, 1, bias=False)  # float32: 4 bytes per weight


class TransformerCacheTest(unittest.TestCase):
    def test_repeated_lora_sets_are_built_once(self):
        cache = TransformerCache(lambda key: model_of(1), budget_bytes=10 << 20)
        first = cache.get(())
        self.assertIs(cache.get(()), first)
        cache.get((("style.safetensors", 0.8),))
        cache.get(())
        self.assertEqual(cache.builds, 2)

    def test_the_least_recently_used_goes_when_the_budget_is_full(self):
        cache = TransformerCache(lambda key: model_of(4), budget_bytes=9 << 20)
        cache.get(("a",))
        cache.get(("b",))
        cache.get(("a",))  # b is now the least recently used
        cache.get(("c",))
        self.assertEqual(list(cache.entries), [("a",), ("c",)])
        self.assertLessEqual(sum(size for _, size in cache.entries.values()), 9 << 20)

    def test_one_transformer_larger_than_the_budget_is_still_kept(self):
        cache = TransformerCache(lambda key: model_of(4), budget_bytes=1 << 20)
        cache.get(("a",))
        cache.get(("b",))
        self.assertEqual(list(cache.entries), [("b",)])
        self.assertEqual(cache.builds, 2)


if __name__ == "__main__":
    unittest.main()
