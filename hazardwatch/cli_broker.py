"""The command line of broker identities: ``broker config``, ``credentials issue|revoke``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, cast

from hazardwatch.broker import Identity, TlsListener, gateway_identity, platform_identity
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import load_plant
from hazardwatch.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
Add = Callable[[str, Handler, str], argparse.ArgumentParser]


def cmd_broker_config(args: argparse.Namespace, settings: Settings) -> int:
    from hazardwatch.broker_admin import ListenerOptions, write_config
    from hazardwatch.credentials import reload_hint

    directory = Path(args.out) if args.out else settings.broker_dir
    plant = load_plant(args.devices or settings.devices)
    workers = [w.strip() for w in args.ingest_workers.split(",") if w.strip()]
    if not workers:
        raise ConfigError("--ingest-workers names no worker")
    options = ListenerOptions(listen=args.listen, port=args.port, client_host=args.client_host,
                              tls=_tls(args), max_packet_size=args.max_payload)  # fmt: skip
    report = write_config(directory, plant, workers, options)
    print(f"wrote {report.conf} and its passwd, acl and credentials: {len(report.added)} identities added, "
          f"{len(report.kept)} kept with their secrets")  # fmt: skip
    for name in report.added:
        print(f"  new: {name}")
    for name in report.stale:  # a decommissioned gateway's secret still opens the broker
        print(f"  not in the ledger, still valid: {name} (end it: hazardwatch credentials revoke …)")
    print(f"run it:       mosquitto -c {report.conf}")
    print(f"credentials:  {report.directory / 'credentials'}/<identity>.env (give each process its own:"
          " --env-file)")  # fmt: skip
    print(reload_hint(report.directory))
    return 0


def _tls(args: argparse.Namespace) -> TlsListener | None:
    if not (args.tls_cert or args.tls_key):
        return None
    if not (args.tls_cert and args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    files = {}
    for name in ("tls_cert", "tls_key", "tls_ca"):
        value = getattr(args, name)
        if value:
            path = Path(value).resolve()
            if not path.is_file():
                raise ConfigError(f"--{name.replace('_', '-')}: no file {value}")
            files[name[4:]] = str(path)
    return TlsListener(port=args.tls_port, **files)


def _identity(args: argparse.Namespace) -> Identity:
    if args.platform:
        if args.enterprise or args.gateway:
            raise ConfigError("--platform names a platform service: no --enterprise or --gateway with it")
        return platform_identity(args.platform)
    if not (args.enterprise and args.gateway):
        raise ConfigError("name a gateway (--enterprise E --gateway G) or a platform service (--platform)")
    return gateway_identity(args.enterprise, args.gateway, cast(Literal["agent", "video"], args.service))


def _warn_outside_ledger(identity: Identity, args: argparse.Namespace, settings: Settings) -> None:
    if identity.kind not in ("agent", "video"):
        return
    try:
        plant = load_plant(args.devices or settings.devices)
    except ConfigError:
        return
    known = {(e.code, g.id) for e in plant.enterprises for g in e.gateways}
    if (identity.enterprise, identity.gateway) not in known:
        print(f"warning: {identity.enterprise}/{identity.gateway} is not a gateway of the devices file; "
              "ingest dead-letters what it publishes", file=sys.stderr)  # fmt: skip


def cmd_credentials_issue(args: argparse.Namespace, settings: Settings) -> int:
    from hazardwatch.broker_admin import issue
    from hazardwatch.credentials import reload_hint

    identity = _identity(args)
    _warn_outside_ledger(identity, args, settings)
    directory = Path(args.broker_dir) if args.broker_dir else settings.broker_dir
    path = issue(directory, identity, Path(args.out) if args.out else None)
    print(f"issued {identity.name}: {path} (mode 0600; give it to the process with --env-file)")
    print(reload_hint(directory.resolve()))
    return 0


def cmd_credentials_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from hazardwatch.broker_admin import revoke
    from hazardwatch.credentials import reload_hint

    identity = _identity(args)
    directory = Path(args.broker_dir) if args.broker_dir else settings.broker_dir
    existed = revoke(directory, identity)
    print(f"revoked {identity.name}" if existed else f"{identity.name} had no secret; it stays revoked")
    print(reload_hint(directory.resolve()))
    return 0


def check_scope(username: str | None, service: str, selected: Iterable[tuple[str, str]]) -> None:
    """A gateway identity publishes for its own gateway alone: refuse a process that would run more
    (or another) under it — the broker would drop their messages, or they would take turns."""
    prefix = f"hw-{service}-"
    if not username or not username.startswith(prefix):
        return
    names = sorted({f"{prefix}{e}-{g}" for e, g in selected})
    if names != [username]:
        raise ConfigError(f"the broker identity {username} is one gateway's; this {service} would run "
                          f"{', '.join(names) or 'none'}: select its gateway with --enterprise and "
                          "--gateway")  # fmt: skip


def add_commands(add: Add) -> None:
    p = add("broker", cmd_broker_config, "the MQTT broker's identities: write a Mosquitto configuration")
    sub = p.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    p_conf = sub.add_parser(
        "config",
        help="write a Mosquitto 2.x configuration for the ledger: one identity per gateway and service",
        description="write DIR/mosquitto.conf (anonymous off, passwords, ACL, client ids bound to user "
        "names, a message size limit, persistence, optional TLS listener), DIR/passwd (hashes), DIR/acl and "
        "DIR/credentials/<identity>.env (mode 0600) for hw-agent-<E>-<G> and hw-video-<E>-<G> of each "
        "gateway (video: gateways with cameras), hw-ingest-<worker>, hw-workflows and hw-config. Run again "
        "after the ledger changes: new gateways are added, every existing secret is kept. Start the broker "
        "with: mosquitto -c DIR/mosquitto.conf",
    )
    p_conf.set_defaults(handler=cmd_broker_config)
    p_conf.add_argument("--out", metavar="DIR", help="broker directory (default: $HW_BROKER_DIR or "
                        "$HW_VAR_DIR/broker)")  # fmt: skip
    p_conf.add_argument(
        "--devices", dest="devices", help="devices file (default: $HW_DEVICES or devices.yaml)"
    )
    p_conf.add_argument("--ingest-workers", default="1", metavar="IDS",
                        help="comma-separated ingest worker ids, an identity each (default: 1)")  # fmt: skip
    p_conf.add_argument("--listen", help="address to listen on (default 127.0.0.1, or as before)")
    p_conf.add_argument("--port", type=int, help="plain MQTT port (default 1884, or as before)")
    p_conf.add_argument("--client-host", help="host name clients connect to, in the credentials' URL "
                        "(default: the listen address)")  # fmt: skip
    p_conf.add_argument("--tls-cert", metavar="FILE", help="the broker's certificate: adds a TLS listener")
    p_conf.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")
    p_conf.add_argument("--tls-ca", metavar="FILE", help="the CA clients verify the broker with (in the "
                        "credentials' mqtts:// URL; default: the system's CAs)")  # fmt: skip
    p_conf.add_argument("--tls-port", type=int, default=8883, help="TLS port (default 8883)")
    p_conf.add_argument("--max-payload", type=int, metavar="BYTES", help="largest MQTT packet the broker "
                        "takes (default 4 MiB + 64 KiB: a video event with its inline snapshot)")  # fmt: skip

    p = add("credentials", cmd_credentials_issue, "issue or revoke one broker identity's secret")
    sub = p.add_subparsers(dest="credentials_command", required=True, metavar="ACTION")
    p_issue = sub.add_parser(
        "issue",
        help="create or rotate an identity's secret and write its environment file (mode 0600)",
        description="create or rotate the secret of a gateway's identity (hw-agent-<E>-<G>, or "
        "hw-video-<E>-<G> with --service video) or of a platform service (--platform "
        "ingest-<worker>|workflows|config): its hash goes into the broker directory's passwd, its ACL "
        "entry into acl, and HW_MQTT_URL and HW_MQTT_PASSWORD into the environment file the process "
        "reads with --env-file. A running broker of "
        "the directory is reloaded (SIGHUP).",
    )
    p_issue.set_defaults(handler=cmd_credentials_issue)
    p_issue.add_argument("--out", metavar="FILE", help="environment file to write (default: "
                         "DIR/credentials/<identity>.env)")  # fmt: skip
    p_revoke = sub.add_parser(
        "revoke",
        help="end an identity: out of passwd and the ACL, its environment file removed, the broker reloaded",
        description="remove an identity from the broker directory's passwd and acl and delete its "
        "environment file; `broker config` does not add it back (issue does). A running broker of the "
        "directory is reloaded (SIGHUP) and refuses the identity from then on.",
    )
    p_revoke.set_defaults(handler=cmd_credentials_revoke)
    for q in (p_issue, p_revoke):
        q.add_argument("--enterprise", help="the gateway's enterprise code")
        q.add_argument("--gateway", help="the gateway id")
        q.add_argument("--service", choices=["agent", "video"], default="agent",
                       help="the gateway's agent or its video process (default: agent)")  # fmt: skip
        q.add_argument("--platform", metavar="NAME",
                       help="a platform identity: ingest-<worker>, workflows or config")  # fmt: skip
        q.add_argument("--broker-dir", metavar="DIR", help="broker directory (default: $HW_BROKER_DIR or "
                       "$HW_VAR_DIR/broker)")  # fmt: skip
        q.add_argument("--devices", dest="devices", help="devices file, to warn of a gateway outside it")
