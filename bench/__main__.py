"""Run every benchmark: ``python -m bench``."""

from bench import ingest_bench, replay_bench, rules_bench

rules_bench.main([])
replay_bench.main([])
ingest_bench.main([])
