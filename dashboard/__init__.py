"""The web dashboard: pages, JSON API, live push over WebSocket, authentication and scopes.

Entry points: ``dashboard.app.create_app`` / ``dashboard.app.serve`` and
``dashboard.auth.create_user`` (used by ``hazardwatch user add``).
"""
