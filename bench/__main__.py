"""Run every benchmark: ``python -m bench``."""

from bench import replay_bench, rules_bench

rules_bench.main([])
replay_bench.main([])
