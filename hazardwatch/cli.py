"""The ``hazardwatch`` command line: one command per part, settings from env and flags.

Each command imports its part lazily, so the kernel depends on no server package and a
plant's edge PC can run ``hazardwatch agent`` with the edge packages alone.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from hazardwatch import __version__, envfile, logsetup
from hazardwatch.cli_broker import add_commands as add_broker_commands
from hazardwatch.cli_broker import check_scope
from hazardwatch.errors import ConfigError, HazardWatchError
from hazardwatch.ledger import Plant, load_plant
from hazardwatch.ledger.rulesfile import with_rules
from hazardwatch.settings import ENV_DOC, Settings, parse_host_port

# the synthetic cameras' scenes (simulators.camera_scene.SCENES, without its negative controls)
CAMERA_SCENES = ["normal", "intrusion", "night", "covered", "defocused", "moved", "frozen", "offline", "fire",
                 "smoke"]  # fmt: skip

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


def _env_epilog() -> str:
    return "environment:\n" + "\n".join(f"  {name:<18} {doc}" for name, doc in ENV_DOC.items())


def _plant(args: argparse.Namespace, settings: Settings) -> Plant:
    return load_plant(args.devices or settings.devices)


def _ruled_plant(args: argparse.Namespace, settings: Settings) -> Plant:
    """The devices file with the rules file's settings over it (``--rules`` or $HW_RULES), if any."""
    return with_rules(_plant(args, settings), args.rules or settings.rules)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    plant = load_plant(args.file)
    tags = sum(1 for _ in plant.iter_tags())
    cameras = sum(1 for e in plant.enterprises for _ in e.iter_cameras())
    print(f"{args.file}: OK — {len(plant.enterprises)} enterprises, {tags} tags, {cameras} cameras")
    rules = args.rules or settings.rules
    if rules:
        plant = with_rules(plant, rules)
        print(f"{rules}: OK — the rules below are the devices file's with the rules file's over them")
    from hazardwatch.ledger.report import grade_report

    for enterprise in plant.enterprises:
        for source in enterprise.hazard_sources:
            print(*grade_report(enterprise.code, source), sep="\n")
            for group in source.voting:
                print(f"    voting {group.code}: {group.k} of {' '.join(group.tags)} on {group.condition}")
            if source.source_warning is not None:
                warning = source.source_warning
                print(
                    f"    hazard-source warning: {warning.min_tags} tags with {'/'.join(warning.conditions)}"
                )
    findings = [
        f"  {enterprise.code} {tag.code} ({tag.name}): {finding}"
        for enterprise, _, _, tag in plant.iter_tags()
        for finding in tag.gas_findings()
    ]
    if findings:
        print(f"{len(findings)} gas limit findings (GB/T 50493-2019):", *findings, sep="\n", file=sys.stderr)
        return 1
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.db import ensure_database
    from ingest.migrate import migrate

    url = args.database_url or settings.database_url
    if ensure_database(url):
        print(f"created database {url.rsplit('/', 1)[-1]}")
    backend, applied = migrate(url)
    print(f"storage backend: {backend}; applied {len(applied)} migrations {' '.join(applied)}".rstrip())
    if args.devices or args.sync:
        _sync(url, _ruled_plant(args, settings))
    return 0


def _sync(url: str, plant: Plant) -> None:
    from ingest.db import connect
    from ingest.ledger_sync import sync_ledger

    with connect(url) as conn:
        report = sync_ledger(conn, plant)
    print(
        f"ledger: {report.enterprises} enterprises, {report.hazard_sources} hazard sources, "
        f"{report.tags} tags, {report.grade_changes} grade changes, {report.retired_tags} retired tags"
    )


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators import SimulatorUnreachable, request_scenario, serve

    control = parse_host_port(args.control or settings.sim_control)
    if args.camera_scene:
        from simulators.camera_stream import request_scene

        try:
            switched = request_scene(_plant(args, settings), args.camera_scene, args.camera)
        except (ConnectionError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"cameras {' '.join(switched) or '(none)'} now play {args.camera_scene}")
        return 0
    if args.scenario:
        try:
            state = request_scenario(
                control, args.scenario, enterprise=args.enterprise, tag=args.tag, rate=args.rate,
                spread=args.spread, hold_s=args.hold,
            )  # fmt: skip
        except SimulatorUnreachable:
            print(f"no simulator answers at {control[0]}:{control[1]}; starting one for {args.scenario}")
        else:
            if state.get("replaced"):
                print(f"note: this replaces scenario {state['replaced']}, which was still running")
            print(f"scenario {args.scenario} started on the running simulator: {state}")
            return 0
    logsetup.configure(settings.log_level, "simulate")
    try:
        serve(
            _plant(args, settings),
            control,
            scenario=args.scenario,
            tag=args.tag,
            enterprise=args.enterprise,
            rate=args.rate,
            spread=args.spread,
            hold_s=args.hold,
        )
    except ValueError as err:  # an unknown scenario or tag, a rate or spread that does not fit
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_agent(args: argparse.Namespace, settings: Settings) -> int:
    from gateway_agent.agent import serve
    from hazardwatch.settings import parse_mqtt_url

    logsetup.configure(settings.log_level, "agent")
    metrics_flag = args.metrics or settings.agent_metrics
    metrics = None if metrics_flag.lower() in ("off", "none", "") else parse_host_port(metrics_flag)
    plant, address = _plant(args, settings), parse_mqtt_url(args.mqtt_url or settings.mqtt_url)
    selected = [(e.code, g.id) for e in plant.enterprises for g in e.gateways
                if args.enterprise in (None, e.code) and args.gateway in (None, g.id)]  # fmt: skip
    check_scope(address.username, "agent", selected)
    return serve(
        plant,
        address,
        state_dir=_agent_state_dir(args, settings),
        enterprise=args.enterprise,
        gateway=args.gateway,
        metrics=metrics,
    )


def cmd_agent_status(args: argparse.Namespace, settings: Settings) -> int:
    from gateway_agent.status import gateway_statuses, render

    statuses = gateway_statuses(_agent_state_dir(args, settings))
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], ensure_ascii=False, indent=1))
    else:
        print(render(statuses))
    if not statuses:
        return 2
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_agent_push_config(args: argparse.Namespace, settings: Settings) -> int:
    from gateway_agent.remote_config import push
    from hazardwatch.settings import parse_mqtt_url

    address = parse_mqtt_url(args.mqtt_url or settings.mqtt_url)
    for topic, version in push(
        _plant(args, settings), address, enterprise=args.enterprise, gateway=args.gateway
    ):
        print(f"{topic}  version {version}")
    return 0


def _agent_state_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.state_dir) if args.state_dir else settings.var_dir / "agent"


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from alarms.policy import load_policy
    from ingest.service import serve

    logsetup.configure(settings.log_level, "ingest")
    url = args.database_url or settings.database_url
    policy = load_policy(args.policy or settings.policy)
    if args.no_sync and args.rules:
        raise ConfigError("--rules takes effect through the ledger sync: drop --no-sync")
    plant = None if args.no_sync else _ruled_plant(args, settings)
    enterprises = [e for e in (args.enterprises or "").split(",") if e]
    serve(
        url,
        args.mqtt_url or settings.mqtt_url,
        plant=plant,
        enterprises=enterprises,
        worker_id=args.worker_id,
        policy=policy,
    )
    return 0


def cmd_video(args: argparse.Namespace, settings: Settings) -> int:
    from hazardwatch.settings import parse_mqtt_url
    from video.service import serve

    logsetup.configure(settings.log_level, "video")
    plant, address = _plant(args, settings), parse_mqtt_url(args.mqtt_url or settings.mqtt_url)
    selected = [(e.code, c.gateway) for e in plant.enterprises for _, c in e.iter_cameras()
                if args.enterprise in (None, e.code) and args.gateway in (None, c.gateway)]  # fmt: skip
    check_scope(address.username, "video", selected)
    serve(plant, address,
          Path(args.state_dir) if args.state_dir else settings.var_dir / "video", enterprise=args.enterprise,
          gateway=args.gateway, group_size=args.group_size, log_level=settings.log_level)  # fmt: skip
    return 0


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from alarms.policy import load_policy
    from dashboard.app import serve

    logsetup.configure(settings.log_level, "dashboard")
    serve(
        args.database_url or settings.database_url,
        args.host or settings.dashboard_host,
        args.port or settings.dashboard_port,
        timezone=settings.timezone,
        policy=load_policy(args.policy or settings.policy),
        access_log=args.access_log,
    )
    return 0


def cmd_workflows(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from alarms.policy import load_policy
    from alarms.workflows import Workflows, run_once, serve
    from hazardwatch.clock import SystemClock

    logsetup.configure(settings.log_level, "workflows")
    url = args.database_url or settings.database_url
    policy = load_policy(args.policy or settings.policy)
    flows = Workflows.from_environment(policy, SystemClock(), os.environ, settings.timezone)
    uplink_url = args.uplink or settings.uplink_url
    if uplink_url:
        from alarms.uplink import Uplink
        from hazardwatch.settings import parse_mqtt_url

        uplink_address = parse_mqtt_url(uplink_url)
        flows.uplink = Uplink(uplink_address, client_id=uplink_address.username or "hw-workflows")
        flows.uplink.start()
        if args.once and not flows.uplink.wait_connected(10.0):
            print(f"warning: no uplink broker answers at {uplink_url}; nothing uplinked", file=sys.stderr)
    try:
        if args.once:
            r = run_once(url, flows)
            print(f"journal rows tracked {r.tracked}, escalation steps {r.escalated}, notified rows "
                  f"{r.notified_rows}, deliveries scheduled {r.scheduled}, sent {r.sent}, "
                  f"uplinked {r.uplinked}")  # fmt: skip
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
        serve(url, flows, args.interval, stop)
        return 0
    finally:
        if flows.uplink is not None:
            flows.uplink.close()


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from hazardwatch.supervisor import Stack

    logsetup.configure(settings.log_level, "up")
    return Stack(settings, devices=Path(args.devices or settings.devices), port=args.port).run()


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    import psycopg

    from dashboard.auth import create_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    if len(password) < 8:
        raise ConfigError("the password must have at least 8 characters")
    with psycopg.connect(args.database_url or settings.database_url) as conn:
        user_id = create_user(
            conn,
            args.username,
            password,
            args.role,
            division=args.division,
            enterprise_code=args.enterprise,
            display_name=args.display_name,
            national=args.national,
        )
        conn.commit()
    print(f"user {args.username} ({args.role}) created with id {user_id}")
    return 0


def _local(moment: datetime, settings: Settings) -> str:
    """A stored (UTC) time as shown to people: in the configured time zone, ISO 8601 with its offset."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(settings.timezone)).isoformat(timespec="seconds")


def cmd_deadletters(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.db import connect
    from ingest.deadletters import last_hour_by_kind, recent

    with connect(args.database_url or settings.database_url) as conn:
        letters = recent(conn, args.limit)
        kinds = last_hour_by_kind(conn)
    if not letters:
        print("no dead letters")
    elif kinds:
        print("last hour: " + ", ".join(f"{kind} {count}" for kind, count in kinds))
    for letter in letters:
        preview = letter.payload[:80]
        received = _local(letter.received_at, settings)
        print(f"#{letter.id} {received} {letter.topic}\n    reason: {letter.reason}")
        kept = f", first {len(letter.payload)} kept" if letter.truncated else ""
        print(f"    payload ({letter.size} bytes{kept}, sha256 {letter.sha256.hex()[:16]}…): {preview!r}")
    return 0


def cmd_online(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, timedelta

    from ingest.db import connect
    from ingest.storage import online_rates

    until = datetime.now(UTC).replace(second=0, microsecond=0)
    since = until - timedelta(hours=args.hours)
    if args.by == "camera":
        from ingest.video import camera_online_rates

        with connect(args.database_url or settings.database_url) as conn:
            cameras = camera_online_rates(conn, since, until)
        to = _local(until, settings)
        print(f"camera online rate over the {args.hours:g} h to {to} (time sending pictures)")
        for camera in cameras:
            print(f"  {camera.key:<32} {camera.rate * 100:6.1f} %  now {camera.status}")
        return 0
    with connect(args.database_url or settings.database_url) as conn:
        rates = online_rates(conn, since, until, args.by)
    print(
        f"online rate over the {args.hours:g} h to {_local(until, settings)} (received / expected readings)"
    )
    for rate in rates:
        print(f"  {rate.key:<32} {rate.rate * 100:6.1f} %  {rate.received:>10} / {rate.expected}")
    return 0


def _span(args: argparse.Namespace) -> tuple[datetime, datetime]:
    """--from and --to: ISO 8601 times with a zone, in order."""
    try:
        start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    except ValueError as err:
        raise ConfigError(f"--from/--to must be ISO 8601 times: {err}") from err
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise ConfigError("--from and --to need a time zone (e.g. +08:00 or Z), and --from must come first")
    return start, end


def cmd_rules_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from ingest.backtest import backtest
    from ingest.backtest_report import as_dict, render_text
    from ingest.db import connect

    start, end = _span(args)
    plant = _ruled_plant(args, settings)
    with connect(args.database_url or settings.database_url) as conn:
        report = backtest(conn, plant, start, end)
    tz = ZoneInfo(settings.timezone)
    rules = args.rules or settings.rules
    if args.json:
        doc = {"devices": str(args.devices or settings.devices), "rules": str(rules) if rules else None,
               "timezone": settings.timezone, **as_dict(report, tz)}  # fmt: skip
        print(json.dumps(doc, ensure_ascii=False, indent=1))
        return 0
    ruled = f" with {rules}" if rules else ""
    print(f"backtest of {args.devices or settings.devices}{ruled} from {start.astimezone(tz).isoformat()} "
          f"to {end.astimezone(tz).isoformat()}")  # fmt: skip
    print("\n".join(render_text(report, tz)))
    return 0


def _json_default(value: object) -> object:
    """Times as ISO 8601 (with their offset), anything else as its text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def cmd_kpi(args: argparse.Namespace, settings: Settings) -> int:
    from alarms.kpi import Selection, compute
    from alarms.kpi_text import render
    from ingest.db import connect
    from ingest.storage import online_rates

    start, end = _span(args)
    selection = Selection(args.division or "", args.enterprise)
    with connect(args.database_url or settings.database_url) as conn:
        if args.enterprise and conn.execute("SELECT 1 FROM enterprises WHERE code = %s", (args.enterprise,)
                                            ).fetchone() is None:  # fmt: skip
            raise ConfigError(f"no enterprise {args.enterprise!r} in the ledger")
        try:
            kpis = compute(conn, start, end, selection, online_rates(conn, start, end, "enterprise"))
        except ValueError as err:
            raise ConfigError(str(err)) from err
    if args.json:
        print(json.dumps(kpis.as_dict(), default=_json_default, ensure_ascii=False, indent=1))
    else:
        print(render(kpis, settings.timezone))
    return 0


def _common(parser: argparse.ArgumentParser, *names: str) -> None:
    flags = {
        "devices": ("--devices", "devices file (default: $HW_DEVICES or devices.yaml)"),
        "database_url": ("--database-url", "database URL (default: $HW_DATABASE_URL)"),
        "mqtt_url": ("--mqtt-url", "MQTT broker URL (default: $HW_MQTT_URL)"),
        "rules": ("--rules", "rules file over the devices file's rule settings (default: $HW_RULES)"),
    }
    for name in names:
        flag, doc = flags[name]
        parser.add_argument(flag, dest=name, help=doc)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _float(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise argparse.ArgumentTypeError(
            f"must be a {'non-negative' if zero else 'positive'} number, not {text}"
        )
    return value


def _positive_float(text: str) -> float:
    return _float(text, zero=False)


def _non_negative_float(text: str) -> float:
    return _float(text, zero=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hazardwatch",
        description="HazardWatch: online monitoring and early warning of major hazard sources (重大危险源).",
        epilog=_env_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hazardwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=_env_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        p.set_defaults(handler=handler)
        return p

    p = add(
        "up",
        cmd_up,
        "run the whole stack on one machine: database, broker, simulators, agent, ingest, workflows, board",
    )
    _common(p, "devices")
    p.add_argument("--port", type=int, help="dashboard port (default: $HW_DASHBOARD_PORT or 8080)")

    p = add(
        "check",
        cmd_check,
        "validate a devices file (and a rules file over it); errors come with YAML line numbers",
    )
    p.add_argument("file", type=Path, help="the devices file, e.g. devices.yaml")
    _common(p, "rules")

    p = add("migrate", cmd_migrate, "create the database if needed and bring its schema up to date")
    _common(p, "database_url", "devices", "rules")
    p.add_argument(
        "--sync", action="store_true", help="also synchronize the ledger from the devices (and rules) file"
    )

    p = add("simulate", cmd_simulate, "run the plant simulators, or drive the running ones into a scenario")
    _common(p, "devices")
    p.add_argument("--scenario", choices=["overfill", "gas-leak", "sensor-fault", "sensor-freeze", "normal"],
                   help="abnormal situation to drive the process into")  # fmt: skip
    p.add_argument("--tag", help="tag code the scenario acts on (default: the first fitting tag)")
    p.add_argument("--enterprise", help="enterprise code of --tag")
    p.add_argument("--rate", type=_positive_float, help="climb rate in %% of span per second")
    p.add_argument("--hold", type=_non_negative_float, metavar="S",
                   help="an excursion's seconds at its peak (default: the tag's on-delay + 5 s, so it"
                        " alarms)")  # fmt: skip
    p.add_argument("--spread", type=int, default=0, metavar="N",
                   help="gas-leak: the leak also reaches N more detectors of the same area, each a little"
                        " later (default 0)")  # fmt: skip
    p.add_argument("--control", help="simulator control address host:port (default: $HW_SIM_CONTROL)")
    p.add_argument("--camera-scene", choices=CAMERA_SCENES, help="switch the synthetic cameras to a scene")
    p.add_argument("--camera", help="only this camera (with --camera-scene)")

    p = add("agent", cmd_agent, "run the gateway agent: poll Modbus/OPC-UA devices and publish over MQTT")
    _common(p, "devices", "mqtt_url")
    p.add_argument("--enterprise", help="only this enterprise's gateways")
    p.add_argument("--gateway", help="only this gateway (with --enterprise)")
    p.add_argument(
        "--state-dir", help="directory for the buffer and health files (default: $HW_VAR_DIR/agent)"
    )
    p.add_argument("--metrics", help="Prometheus endpoint host:port or 'off' (default: $HW_AGENT_METRICS)")
    agent_sub = p.add_subparsers(dest="agent_command", metavar="ACTION")
    p_status = agent_sub.add_parser(
        "status",
        help="print each gateway's health: link, buffer, devices, clock (exit 1 if unhealthy)",
        description="print the health the agent records every heartbeat in its state directory; "
        "exit status 0 healthy, 1 unhealthy or stale, 2 no gateway found",
    )
    p_status.set_defaults(handler=cmd_agent_status)
    p_status.add_argument("--state-dir", help="the agent's state directory (default: $HW_VAR_DIR/agent)")
    p_status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_push = agent_sub.add_parser(
        "push-config",
        help="publish the devices file's configuration to running agents (retained, per gateway)",
        description="publish each selected gateway's section of the devices file, retained, on "
        "hw/v1/<enterprise>/<gateway>/config; a running agent validates it, swaps its sources and rolls back "
        "if they do not start; the outcome shows in `hazardwatch agent status`",
    )
    p_push.set_defaults(handler=cmd_agent_push_config)
    _common(p_push, "devices", "mqtt_url")
    p_push.add_argument("--enterprise", help="only this enterprise's gateways")
    p_push.add_argument("--gateway", help="only this gateway")

    p = add("ingest", cmd_ingest, "run an ingest worker: MQTT → readings, dead letters, rules and alarms")
    _common(p, "devices", "database_url", "mqtt_url", "rules")
    p.add_argument("--enterprises", help="comma-separated enterprise codes this worker owns (default: all)")
    p.add_argument("--worker-id", default="1", help="worker id, part of the MQTT client id (default: 1)")
    p.add_argument("--policy", help="alarm policy file (grading, shelving, closure); default $HW_POLICY")
    p.add_argument(
        "--no-sync",
        action="store_true",
        help="do not synchronize the ledger from the devices file (nor apply a rules file)",
    )

    p = add("video", cmd_video, "run the camera analytics of a gateway: capture processes, events over MQTT")
    _common(p, "devices", "mqtt_url")
    p.add_argument("--enterprise", help="only this enterprise's cameras")
    p.add_argument("--gateway", help="only the cameras this gateway reads")
    p.add_argument(
        "--group-size", type=_positive_int, default=4, help="cameras per capture process (default 4)"
    )
    p.add_argument("--state-dir", help="baselines, clips and the events spool (default: $HW_VAR_DIR/video)")

    p = add("dashboard", cmd_dashboard, "run the web dashboard (alarm board, API, live push)")
    _common(p, "database_url")
    p.add_argument("--host", help="listen address (default: $HW_DASHBOARD_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: $HW_DASHBOARD_PORT or 8080)")
    p.add_argument("--access-log", action="store_true", help="log one line per HTTP request (default: off)")
    p.add_argument("--policy", help="alarm policy file (who may shelve, closure); default $HW_POLICY")

    p = add(
        "workflows",
        cmd_workflows,
        "run escalation and notifications: timers per grade walk the chain, webhooks, mail and SMS",
    )
    _common(p, "database_url")
    p.add_argument(
        "--policy", help="alarm policy file (escalation, notifications, contacts); default $HW_POLICY"
    )
    p.add_argument("--interval", type=_positive_float, default=1.0, help="seconds between ticks (default 1)")
    p.add_argument("--once", action="store_true", help="run one tick, print what it did and exit")
    p.add_argument(
        "--uplink",
        metavar="MQTT_URL",
        help="publish every alarm change to this broker on hw/v1/alarms/<division>/<enterprise> "
        "(QoS 1, at least once); default $HW_UPLINK_URL, none",
    )

    p = add("user", cmd_user_add, "manage dashboard users")
    user_sub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    p_add = user_sub.add_parser("add", help="add a user", description="add a dashboard user")
    p_add.set_defaults(handler=cmd_user_add)
    p_add.add_argument("username")
    roles = ["duty_officer", "enterprise", "regulator", "sysadmin", "secadmin", "auditor"]
    p_add.add_argument("--role", required=True, choices=roles)
    p_add.add_argument("--division", default="", help="region scope: prefix of the 6-digit division code")
    p_add.add_argument("--national", action="store_true", help="whole-country scope (officers, regulators)")
    p_add.add_argument("--enterprise", help="enterprise code (role enterprise)")
    p_add.add_argument("--display-name", default="", help="name shown in the dashboard")
    p_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _common(p_add, "database_url")

    p = add(
        "deadletters", cmd_deadletters, "list the newest dead letters (rejected payloads) with their reasons"
    )
    _common(p, "database_url")
    p.add_argument("--limit", type=_positive_int, default=20, help="how many (default 20)")

    p = add(
        "online",
        cmd_online,
        "online rate: readings received against expected per enterprise, gateway or tag; camera time online",
    )
    _common(p, "database_url")
    p.add_argument(
        "--hours",
        type=_positive_float,
        default=24,
        help="the span, ending at the last whole minute (default 24)",
    )
    p.add_argument(
        "--by", choices=["enterprise", "gateway", "tag", "camera"], default="gateway", help="grouping"
    )

    p = add("kpi", cmd_kpi, "alarm KPIs (ISA-18.2) of a region or an enterprise over a time range")
    _common(p, "database_url")
    p.add_argument("--from", dest="start", required=True, help="start, ISO 8601 with a zone")
    p.add_argument("--to", dest="end", required=True, help="end, ISO 8601 with a zone")
    position = p.add_mutually_exclusive_group()
    position.add_argument("--division", help="a region: prefix of the 6-digit division code (default: all)")
    position.add_argument("--enterprise", help="one enterprise, by its code")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = add("rules", cmd_rules_backtest, "rule tools: run a changed rule set over stored history")
    rules_sub = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    p_bt = rules_sub.add_parser(
        "backtest",
        help="the alarms a devices file's rules (with a rules file over them) would have raised over "
        "stored readings, against those raised",
        description="run the rules of a devices file, with a rules file's changes over them (e.g. a tuned "
        "limit, a voting group), over the readings stored between --from and --to through the very step "
        "live ingest runs (devices down and DEVICE_COMM, STALE on a replayed 5 s clock under the gateways "
        "live saw online, composites, tags out of service), and set the alarms they would raise against "
        "those live raised: per subject and condition both lists with their raise and clear times in "
        "$HW_TIMEZONE, the differences (only live, only would-be, different times) and the totals, then "
        "what stored history cannot tell (arrival order of late data, live's clock ticks); nothing is "
        "written",
    )
    p_bt.set_defaults(handler=cmd_rules_backtest)
    _common(p_bt, "devices", "database_url", "rules")
    p_bt.add_argument("--from", dest="start", required=True, help="start, ISO 8601 with a zone")
    p_bt.add_argument("--to", dest="end", required=True, help="end, ISO 8601 with a zone")
    p_bt.add_argument("--json", action="store_true", help="print the report as JSON (times ISO 8601 with "
                      "their offset in $HW_TIMEZONE)")  # fmt: skip

    add_broker_commands(add)
    _add_env_file(parser)
    return parser


def _add_env_file(parser: argparse.ArgumentParser) -> None:
    """``--env-file`` on every command and action, before or after the command's name."""
    parser.add_argument("--env-file", metavar="FILE", default=argparse.SUPPRESS,
                        help="read KEY=VALUE lines (mode 0600: secrets such as HW_MQTT_PASSWORD) over the "
                             "environment before anything else (default: $HW_ENV_FILE)")  # fmt: skip
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_env_file(child)


def apply_env_file(args: argparse.Namespace) -> None:
    """The environment file of ``--env-file`` or $HW_ENV_FILE, over this process's environment."""
    path = getattr(args, "env_file", None) or os.environ.get("HW_ENV_FILE")
    if path:
        envfile.apply(Path(path))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        apply_env_file(args)
        settings = Settings.from_env(dict(os.environ))
        handler: Handler = args.handler
        return handler(args, settings)
    except HazardWatchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
