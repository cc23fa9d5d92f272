"""Run every benchmark: ``python -m bench``."""

from bench import rules_bench

rules_bench.main()
