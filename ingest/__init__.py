"""Ingest tier: MQTT consumer, validation, dead letters, storage, migrations."""
