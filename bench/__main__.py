"""Run every benchmark: ``python -m bench``."""

from bench import (
    backtest_bench,
    board_bench,
    fuzz_bench,
    history_bench,
    ingest_bench,
    modbus_bench,
    nuisance_bench,
    replay_bench,
    rules_bench,
    video_bench,
)

rules_bench.main([])
nuisance_bench.main([])
replay_bench.main([])
ingest_bench.main([])
fuzz_bench.main([])
backtest_bench.main([])
modbus_bench.main([])
video_bench.main([])
history_bench.main([])
board_bench.main([])
