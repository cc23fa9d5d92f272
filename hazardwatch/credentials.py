"""Secrets of broker identities: ``passwd`` hashed by Mosquitto's own tool, env files, reload.

A secret is made with :func:`secrets.token_urlsafe`, written to a 0600 file and hashed there by
``mosquitto_passwd -U`` (never on a command line). ``passwd`` keeps only hashes; the secret
itself lives in the identity's environment file, readable by its owner alone. Nothing here
logs a secret.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from hazardwatch import envfile
from hazardwatch.errors import ConfigError

logger = logging.getLogger(__name__)


def passwd_path(directory: Path) -> Path:
    return directory / "passwd"


def env_path(directory: Path, name: str) -> Path:
    return directory / "credentials" / f"{name}.env"


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One writer of a broker directory at a time (``broker config``, ``credentials``)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and directory.stat().st_uid != 0:
        # root's before anything is read or written in it: a directory the broker's user owned (an
        # older layout) let that user replace its entries with links to root's files
        os.chown(directory, 0, -1)
    lock = directory / ".lock"
    if lock.is_symlink():
        lock.unlink()
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_passwd(directory: Path) -> dict[str, str]:
    """Identity → hash, in file order."""
    path = passwd_path(directory)
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, digest = line.partition(":")
        if sep and name and not line.startswith("#"):
            entries[name] = digest
    return entries


def write_passwd(directory: Path, entries: Mapping[str, str]) -> None:
    path = passwd_path(directory)
    envfile.write_private(path, "".join(f"{name}:{digest}\n" for name, digest in entries.items()))


def hash_secrets(directory: Path, plain: Mapping[str, str]) -> dict[str, str]:
    """Identity → Mosquitto hash of its secret, by ``mosquitto_passwd -U`` on a private file."""
    if not plain:
        return {}
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        raise ConfigError("mosquitto_passwd is not installed (Debian: apt-get install mosquitto)")
    fd, name = tempfile.mkstemp(prefix=".passwd-", dir=directory)  # mode 0600
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{user}:{secret}\n" for user, secret in plain.items()))
        argv = [tool, "-U", str(path)]  # the kept tool, on our own file
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise ConfigError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout.strip()}")
        hashed = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            user, _, digest = line.partition(":")
            hashed[user] = digest
    finally:
        path.unlink(missing_ok=True)
    if set(hashed) != set(plain):
        raise ConfigError("mosquitto_passwd did not hash every identity")
    return hashed


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def known_secret(path: Path) -> str | None:
    """The password of an identity's environment file, if it has one."""
    if not path.exists():
        return None
    return envfile.read(path).get("HW_MQTT_PASSWORD") or None


def write_env(path: Path, url: str, secret: str) -> None:
    """The identity's environment file; the workflows' also names the uplink (``HW_UPLINK_URL``),
    which is how `hazardwatch workflows` finds its broker."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    values = {"HW_MQTT_URL": url, "HW_MQTT_PASSWORD": secret}
    if "://hw-workflows@" in url:
        values["HW_UPLINK_URL"] = url
    envfile.write_private(
        path, "# broker identity: read with --env-file (mode 0600)\n" + envfile.render(values)
    )


def reload_broker(directory: Path) -> int | None:
    """SIGHUP the Mosquitto of this directory when its pid file names a live one; its pid."""
    pid_file = directory / "mosquitto.pid"
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
        comm = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    conf = str((directory / "mosquitto.conf").resolve()).encode()
    if comm != "mosquitto" or conf not in cmdline:
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError:
        return None
    logger.info("broker %d reloads its passwords and ACL", pid)
    return pid


def reload_hint(directory: Path) -> str:
    pid = reload_broker(directory)
    if pid is not None:
        return f"broker (pid {pid}) reloaded"
    return (f"no running broker of {directory} found: it takes the change when it starts, or reload "
            f"yours (Mosquitto: kill -HUP $(cat {directory / 'mosquitto.pid'}))")  # fmt: skip
