"""``hazardwatch broker config`` and ``hazardwatch credentials issue|revoke`` on a broker directory.

``broker config`` is idempotent: run again after the ledger changed it adds the new gateways'
identities, keeps every secret already issued (their hashes in ``passwd``, their env files) and
never adds back an identity that was revoked (``credentials issue`` does, with a new secret).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hazardwatch import credentials as creds
from hazardwatch import envfile
from hazardwatch.broker import (
    STATE_FILE,
    BrokerState,
    Identity,
    TlsListener,
    broker_user,
    hand_over,
    ledger_identities,
    load_state,
    render_acl,
    render_conf,
)
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    """What ``broker config`` was given; None keeps what the directory had (or the default)."""

    listen: str | None = None
    port: int | None = None
    client_host: str | None = None
    tls: TlsListener | None = None
    max_packet_size: int | None = None


@dataclass(slots=True)
class ConfigReport:
    directory: Path
    added: list[str] = field(default_factory=list)  # identities with a new secret
    kept: list[str] = field(default_factory=list)  # identities whose secret was kept
    stale: list[str] = field(default_factory=list)  # identities still valid that the ledger no longer has

    @property
    def conf(self) -> Path:
        return self.directory / "mosquitto.conf"


def write_config(directory: Path, plant: Plant, workers: list[str],
                 options: ListenerOptions = ListenerOptions()) -> ConfigReport:  # fmt: skip
    """Write (or bring up to date) the whole broker directory for the ledger."""
    directory = directory.resolve()
    with creds.locked(directory):
        state = load_state(directory) or BrokerState()
        for name in ("listen", "port", "client_host", "tls", "max_packet_size"):
            value = getattr(options, name)
            if value is not None:
                setattr(state, name, value)
        state.run_as = broker_user(directory)
        wanted = ledger_identities(plant, workers)
        for identity in wanted:
            if identity.name not in state.revoked:
                state.identities.setdefault(identity.name, identity)
        hashes = creds.read_passwd(directory)
        report = ConfigReport(directory)
        # kept (a gateway may be off the ledger for a while), but named: until revoked it still gets in
        report.stale = sorted(set(state.identities) - {i.name for i in wanted})
        plain: dict[str, str] = {}
        for name in state.identities:
            env = creds.env_path(directory, name)
            if name in hashes:
                report.kept.append(name)
                secret = creds.known_secret(env)
                if secret is not None:  # its URL follows the listener
                    creds.write_env(env, state.client_url(name), secret)
            else:  # a new identity, or a passwd lost: the env file's secret when there is one
                plain[name] = creds.known_secret(env) or creds.new_secret()
                report.added.append(name)
        hashes.update(creds.hash_secrets(directory, plain))
        for name, secret in plain.items():
            creds.write_env(creds.env_path(directory, name), state.client_url(name), secret)
        _save(directory, state, {n: hashes[n] for n in state.identities})
    logger.info("broker configuration in %s: %d identities added, %d kept", directory, len(report.added),
                len(report.kept))  # fmt: skip
    if report.stale:
        logger.warning("identities the ledger no longer has keep their access until revoked: %s",
                       ", ".join(report.stale))  # fmt: skip
    return report


def issue(directory: Path, identity: Identity, out: Path | None = None) -> Path:
    """Create or rotate an identity's secret; the environment file written (0600)."""
    directory = directory.resolve()
    name = identity.name
    with creds.locked(directory):
        state = _existing(directory)
        if name in state.revoked:
            state.revoked.remove(name)
        state.identities[name] = identity
        hashes = creds.read_passwd(directory)
        secret = creds.new_secret()
        hashes.update(creds.hash_secrets(directory, {name: secret}))
        default = creds.env_path(directory, name)
        target = (out or default).resolve()
        creds.write_env(target, state.client_url(name), secret)
        if target != default.resolve():
            default.unlink(missing_ok=True)  # its secret is no longer valid
        _save(directory, state, {n: hashes[n] for n in state.identities if n in hashes})
    logger.info("identity %s issued; its environment file is %s", name, target)
    return target


def revoke(directory: Path, identity: Identity) -> bool:
    """End an identity: out of ``passwd`` and the ACL, its env file removed; whether it existed."""
    directory = directory.resolve()
    name = identity.name
    with creds.locked(directory):
        state = _existing(directory)
        existed = state.identities.pop(name, None) is not None
        if name not in state.revoked:
            state.revoked.append(name)
        hashes = creds.read_passwd(directory)
        existed = hashes.pop(name, None) is not None or existed
        creds.env_path(directory, name).unlink(missing_ok=True)
        _save(directory, state, {n: hashes[n] for n in state.identities if n in hashes})
    logger.info("identity %s revoked", name)
    return existed


def _existing(directory: Path) -> BrokerState:
    state = load_state(directory)
    if state is None:
        raise ConfigError(
            f"no broker configuration in {directory}: write one first (hazardwatch broker config --out "
            f"{directory})"
        )
    return state


def _save(directory: Path, state: BrokerState, hashes: dict[str, str]) -> None:
    """passwd, acl, mosquitto.conf and state.json, each replaced atomically; the broker's user gets
    what it reads and writes (``hand_over``), root keeps the rest."""
    directory.chmod(0o700)
    (directory / "data").mkdir(exist_ok=True)
    (directory / "data").chmod(0o700)
    (directory / "credentials").mkdir(mode=0o700, exist_ok=True)
    creds.write_passwd(directory, hashes)
    envfile.write_private(directory / "acl", render_acl(state))
    envfile.write_private(directory / STATE_FILE, state.model_dump_json(indent=1) + "\n")
    conf = directory / "mosquitto.conf"
    envfile.write_private(conf, render_conf(directory, state))
    conf.chmod(0o644)
    hand_over(state, directory)
