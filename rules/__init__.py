"""The vectorized rule engine: pure functions and state arrays, no I/O."""
