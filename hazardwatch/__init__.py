"""HazardWatch: online monitoring and early warning of major hazard sources."""

__version__ = "0.1.0"
