from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hazardwatch.ledger import Plant, load_plant
from tests.support import SAMPLE_DEVICES, private_database, private_mosquitto


@pytest.fixture
def sample_plant() -> Plant:
    return load_plant(SAMPLE_DEVICES)


@pytest.fixture(scope="session")
def mqtt_port() -> Iterator[int]:
    """A private Mosquitto for the whole test session (tests use distinct client ids)."""
    with private_mosquitto() as port:
        yield port


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database for one test."""
    with private_database() as url:
        yield url


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon and t.name != "asyncio_0"
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"
