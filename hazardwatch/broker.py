"""Broker identities and their ACL, and the Mosquitto 2.x configuration written from the ledger.

Every MQTT client of the stack has its own identity, and its user name is its client id
(``use_username_as_clientid``), so no one can take over another's session:

- ``hw-agent-<E>-<G>``: the gateway agent of gateway G of enterprise E. Publishes only its
  ``readings``, ``status`` (online, and its last will) and ``health``; reads only its ``status``
  (who else announced itself as the gateway), ``config``, ``resend`` and ``hw/v1/clock``.
- ``hw-video-<E>-<G>``: the camera analytics of that gateway. Publishes only its ``events`` and
  its retained ``cameras`` status (and that status as its last will).
- ``hw-ingest-<worker>``: an ingest worker. Reads every gateway's topics; publishes the clock
  tick and the resend requests.
- ``hw-workflows``: the alarm uplink (``hazardwatch workflows --uplink``), ``hw/v1/alarms/#``.
- ``hw-config``: the operator's ``hazardwatch agent push-config``, every gateway's ``config``.

The broker directory holds ``mosquitto.conf``, ``passwd`` (hashes only), ``acl``, ``state.json``
(the identities and listener, no secret), ``credentials/<identity>.env`` (mode 0600: the URL and
the password a process reads with ``--env-file``), ``data/`` (persistence), the log and pid file.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hazardwatch import wire
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant

logger = logging.getLogger(__name__)

DEFAULT_PORT = 1884  # beside a system broker on 1883
# A message is at most a video event with its inline JPEG snapshot (wire.MAX_EVENT_BYTES, 4 MiB;
# a pushed configuration is bounded alike) plus its topic and MQTT header: 64 KiB of room. A
# readings batch is far smaller (at most 5,000 readings of ~90 bytes, about 450 KB).
DEFAULT_MAX_PACKET = wire.MAX_EVENT_BYTES + 64 * 1024
# Messages queued for a platform session that is away (an ingest worker restarting): an hour of
# two batches a second from 50 gateways; the agent keeps what it sent for longer (keep_sent_h).
MAX_QUEUED_MESSAGES = 360_000
# ... and at most this many bytes a session: a count alone let one gateway fill an absent ingest
# worker's queue with 360,000 messages of 4 MiB (1.4 TB) and the broker's memory with it. An hour of
# batches of a few kB fits; what is dropped beyond it the agent still keeps (keep_sent_h) and resends.
MAX_QUEUED_BYTES = 1024 * 1024 * 1024
SESSION_EXPIRY = "14d"  # persistent sessions of clients gone longer than this are dropped

Kind = Literal["agent", "video", "ingest", "workflows", "config"]
PLATFORM = ("workflows", "config")
STATE_FILE = "state.json"


class Identity(BaseModel):
    """One broker identity: who it is and so what it may publish and read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind = Field(description="agent, video (per gateway), ingest (per worker), workflows, config")
    enterprise: str = Field("", description="the gateway's enterprise (agent, video)")
    gateway: str = Field("", description="the gateway id (agent, video)")
    worker: str = Field("", description="the ingest worker id (ingest)")

    @property
    def name(self) -> str:
        if self.kind in ("agent", "video"):
            return f"hw-{self.kind}-{self.enterprise}-{self.gateway}"
        if self.kind == "ingest":
            return f"hw-ingest-{self.worker}"
        return f"hw-{self.kind}"

    def rules(self) -> list[tuple[str, str]]:
        """(access, topic filter) of the ACL: ``read`` is subscribe and receive, ``write`` publish,
        ``readwrite`` both."""
        root = wire.TOPIC_ROOT
        own = f"{root}/{self.enterprise}/{self.gateway}"
        if self.kind == "agent":
            # its own status it also reads: a second agent running as the gateway is seen there
            return [
                ("write", f"{own}/readings"), ("readwrite", f"{own}/status"), ("write", f"{own}/health"),
                ("read", f"{own}/config"), ("read", f"{own}/resend"), ("read", wire.CLOCK_TOPIC),
            ]  # fmt: skip
        if self.kind == "video":
            return [("write", f"{own}/events"), ("write", f"{own}/cameras")]
        if self.kind == "ingest":
            return [("read", f"{root}/+/+/#"), ("write", wire.CLOCK_TOPIC), ("write", f"{root}/+/+/resend")]
        if self.kind == "workflows":
            return [("write", f"{root}/alarms/#")]
        return [("write", f"{root}/+/+/config")]


def gateway_identity(enterprise: str, gateway: str, service: Literal["agent", "video"] = "agent") -> Identity:
    _check_code(enterprise, "enterprise")
    _check_code(gateway, "gateway")
    return Identity(kind=service, enterprise=enterprise, gateway=gateway)


def platform_identity(name: str) -> Identity:
    """``ingest-<worker>``, ``workflows`` or ``config``."""
    if name.startswith("ingest-") and name[len("ingest-") :]:
        worker = name[len("ingest-") :]
        _check_code(worker, "ingest worker")
        return Identity(kind="ingest", worker=worker)
    if name in PLATFORM:
        return Identity(kind=name)
    raise ConfigError(f"unknown platform identity {name!r}: ingest-<worker>, workflows or config")


def _check_code(value: str, what: str) -> None:
    # a topic level and part of a user name: no MQTT wildcard, separator, colon or space
    if not value or any(c in value for c in "+#/: \t\n$") or len(value) > 64:
        raise ConfigError(f"{what} {value!r} cannot name a broker identity")


class TlsListener(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(8883, ge=1, le=65535)
    cert: str = Field(description="the broker's certificate (PEM), absolute path")
    key: str = Field(description="its private key (PEM), absolute path")
    ca: str = Field("", description="the CA clients verify the broker with; '' = the system's")


class BrokerState(BaseModel):
    """What ``state.json`` keeps: the listeners and every identity issued (no secret)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = Field("127.0.0.1", description="address the broker listens on")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    client_host: str = Field("", description="host name clients connect to; '' = the listen address")
    tls: TlsListener | None = None
    max_packet_size: int = Field(DEFAULT_MAX_PACKET, ge=64 * 1024, le=256 * 1024 * 1024)
    run_as: str = Field("", description="the user the broker runs as when started by root; '' = its own")
    identities: dict[str, Identity] = Field(default_factory=dict)
    revoked: list[str] = Field(default_factory=list, description="identities a ledger run does not add back")

    def client_url(self, name: str) -> str:
        any_address = self.listen in ("0.0.0.0", "::", "")  # noqa: S104 (compared, not bound)
        host = self.client_host or ("127.0.0.1" if any_address else self.listen)
        if ":" in host:
            host = f"[{host}]"
        if self.tls is not None:
            query = f"?cafile={quote(str(self.tls.ca), safe='/')}" if self.tls.ca else ""
            return f"mqtts://{name}@{host}:{self.tls.port}{query}"
        return f"mqtt://{name}@{host}:{self.port}"


def load_state(directory: Path) -> BrokerState | None:
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        return BrokerState.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as err:
        raise ConfigError(f"{path} cannot be read: {err}") from err


def ledger_identities(plant: Plant, workers: list[str]) -> list[Identity]:
    """An agent per gateway, a video process per gateway with cameras, the platform's services."""
    found: list[Identity] = []
    for enterprise in plant.enterprises:
        found += [gateway_identity(enterprise.code, g.id) for g in enterprise.gateways]
        with_cameras = sorted({camera.gateway for _, camera in enterprise.iter_cameras()})
        found += [gateway_identity(enterprise.code, g, "video") for g in with_cameras]
    found += [platform_identity(f"ingest-{w}") for w in workers]
    found += [platform_identity(name) for name in PLATFORM]
    return found


def render_acl(state: BrokerState) -> str:
    lines = ["# Written by `hazardwatch broker config` from the ledger: one block per identity.",
             "# No anonymous client: nothing stands outside a user block."]  # fmt: skip
    for name in sorted(state.identities):
        lines += ["", f"user {name}"]
        lines += [f"topic {access} {topic}" for access, topic in state.identities[name].rules()]
    return "\n".join(lines) + "\n"


def render_conf(directory: Path, state: BrokerState) -> str:
    d = directory.resolve()
    lines = [
        "# Written by `hazardwatch broker config`; run with: mosquitto -c " + str(d / "mosquitto.conf"),
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {d / 'passwd'}",
        f"acl_file {d / 'acl'}",
        "# the largest legitimate message: a video event with its inline snapshot (+ headers)",
        f"max_packet_size {state.max_packet_size}",
        "max_inflight_messages 100",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"persistent_client_expiration {SESSION_EXPIRY}",
        "persistence true",
        f"persistence_location {d / 'data'}/",
        f"pid_file {d / 'mosquitto.pid'}",
        f"log_dest file {d / 'mosquitto.log'}",
        "",
        "# every listener: a client's id is its user name, so no one takes over another's session;",
        "# with TLS, the plain listener stays on loopback (no password in clear on the network)",
        f"listener {state.port} {'127.0.0.1' if state.tls is not None else state.listen}",
        "use_username_as_clientid true",
    ]
    if state.tls is not None:
        tls = state.tls
        lines += ["", f"listener {tls.port} {state.listen}", "use_username_as_clientid true",
                  f"certfile {tls.cert}", f"keyfile {tls.key}", "tls_version tlsv1.2"]  # fmt: skip
    if state.run_as:
        lines += ["", f"user {state.run_as}"]
    return "\n".join(lines) + "\n"


def broker_user(directory: Path) -> str:
    """Who the broker runs as: '' (the caller) unless root, who hands it ``mosquitto`` if that
    user can reach the directory, else keeps it root (with a warning) so persistence holds."""
    if os.geteuid() != 0:
        return ""
    import pwd

    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        return "root"
    probe = subprocess.run(  # noqa: S603 (fixed argv, a path of ours)
        ["/usr/sbin/runuser", "-u", "mosquitto", "--", "test", "-x", str(directory.parent.resolve())],
        capture_output=True, check=False,
    )  # fmt: skip
    if probe.returncode == 0:
        return "mosquitto"
    logger.warning("the mosquitto user cannot reach %s (a parent directory is closed to it): the broker "
                   "runs as root", directory)  # fmt: skip
    return "root"


BROKER_WRITES = ("mosquitto.log", "mosquitto.pid")  # in the directory; and everything under data/


def hand_over(state: BrokerState, directory: Path) -> None:
    """Let the user the broker runs as (root only) read its configuration and write only what it must.

    The directory, ``mosquitto.conf``, ``state.json`` and ``credentials/`` stay root's: root reads
    them (``mosquitto -c`` as root, the next ``broker config``), so a broker user who could replace
    or edit them would become root (a ``user root`` or ``plugin`` line, a symlink chowned to it). It
    gets ``passwd`` and ``acl`` (it reads them after dropping privileges; 0600), ``data/``, and the
    log and pid files, created here as regular files. Nothing follows a symbolic link.
    """
    if not state.run_as or state.run_as == "root" or os.geteuid() != 0:
        return
    import pwd

    user = pwd.getpwnam(state.run_as)
    uid, gid = user.pw_uid, user.pw_gid
    _own(directory, 0, gid, 0o750)  # the broker may enter it, never add, remove or rename in it
    _own(directory / "mosquitto.conf", 0, 0, 0o644)
    for name in ("passwd", "acl"):
        _own(directory / name, uid, gid, 0o600)
    data = directory / "data"
    _own(data, uid, gid, 0o700)
    for entry in data.iterdir():
        os.chown(entry, uid, gid, follow_symlinks=False)
    for name in BROKER_WRITES:
        path = directory / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            path.unlink()  # planted where a file of the broker belongs (an older layout let it)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_APPEND, 0o640)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o640)
        finally:
            os.close(fd)


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    """Owner, group and mode of a path of ours, never through a symbolic link."""
    if not path.exists() or path.is_symlink():
        return
    os.chown(path, uid, gid, follow_symlinks=False)
    path.chmod(mode)
