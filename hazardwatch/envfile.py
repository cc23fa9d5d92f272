"""Environment files: ``KEY=VALUE`` lines a process reads before its settings (``--env-file``).

They carry a process's secrets (its broker identity's password) so that none sits on a command
line or in the devices file. A file anyone but its owner may read or write is refused, as ssh
refuses a private key: the secret in it must be taken as already leaked.

Format: one ``KEY=VALUE`` a line; blank lines and lines starting with ``#`` are skipped; an
optional ``export`` before the key; a value may be quoted with ``'`` or ``"`` (the quotes are
removed, nothing inside is expanded). The same file can be sourced by a POSIX shell.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from hazardwatch.errors import ConfigError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_BYTES = 64 * 1024  # a few settings, not a data file
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_@%+=:,./?-]*$")  # no shell meaning unquoted


def _check_info(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"environment file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"environment file {path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"it holds secrets; make it readable by its owner alone (chmod 600 {path})"
        )
    if info.st_uid not in (os.geteuid(), 0):
        # as ssh refuses a key of another user: whoever owns it chooses this process's settings
        raise ConfigError(
            f"environment file {path} belongs to another user (uid {info.st_uid}): it would choose this "
            f"process's settings; give it to the user that runs the process (chown)"
        )


def parse(text: str, origin: str = "environment file") -> dict[str, str]:
    """The variables of an environment file's text; ConfigError names the line (never its value)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            raise ConfigError(f"{origin}, line {number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value[:1] in ("'", '"'):
            raise ConfigError(f"{origin}, line {number}: {key}'s value has an unclosed quote")
        values[key] = value
    return values


def read(path: Path) -> dict[str, str]:
    """The variables of a private environment file (a regular file of ours or root's, closed to
    group and others), checked on the file opened, so that nothing can be swapped in between the
    check and the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)  # a FIFO does not block
    except OSError as err:
        raise ConfigError(f"environment file {path}: {err.strerror or err}") from err
    try:
        _check_info(path, os.fstat(fd))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"environment file {path} cannot be read: {err}") from err
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"environment file {path} is larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"environment file {path} cannot be read: {err}") from err
    return parse(text, str(path))


def apply(path: Path, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Read the file and set its variables over the environment (``os.environ`` by default).

    Only HazardWatch's own settings (``HW_…``): a file that could set ``LD_PRELOAD``,
    ``PYTHONPATH`` or ``PATH`` would run code of its choosing in this process's children."""
    values = read(path)
    foreign = sorted(key for key in values if not key.startswith("HW_"))
    if foreign:
        raise ConfigError(f"environment file {path} sets {', '.join(foreign)}: only HW_ settings are read")
    (os.environ if environ is None else environ).update(values)
    return values


def render(values: Mapping[str, str]) -> str:
    """An environment file's text, values single-quoted where a shell would need it."""
    lines = []
    for key, value in values.items():
        if not _KEY.match(key) or "'" in value or "\n" in value:
            raise ValueError(f"cannot write {key!r} to an environment file")
        lines.append(f"{key}={value}" if _SAFE_VALUE.match(value) else f"{key}='{value}'")
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner alone, atomically (never a moment open to others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file of ours (O_EXCL, a name nobody can guess): never one planted in a shared directory,
    # whose owner would keep it, and an open descriptor on it, after we wrote the secret in
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
