"""Data sources of the agent, one module per protocol behind the Source protocol."""
