"""The KPIs as text for the command line, times in the reader's zone, with the ISA-18.2 targets."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alarms.kpi import Kpis
from alarms.kpi_arrays import Distribution

PRIORITY_NAMES = {1: "一级", 2: "二级", 3: "三级"}
PRIORITY_TARGETS = {1: 5, 2: 15, 3: 80}  # % (EEMUA 191: high / medium / low)


def _when(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} s"


def _distribution(name: str, d: Distribution) -> str:
    return (
        f"  {name:<22} p50 {_seconds(d.p50)}  p90 {_seconds(d.p90)}  max {_seconds(d.max)}"
        f"  ({d.count} done, {d.pending} pending)"
    )


def render(kpis: Kpis, timezone: str = "Asia/Shanghai", rows: int = 10) -> str:
    zone = ZoneInfo(timezone)
    position = kpis.division or "(all)"
    who = f"enterprise {kpis.enterprise_code}" if kpis.enterprise_code else f"division {position}"
    lines = [
        f"KPIs of {who} from {_when(kpis.start, zone)} to {_when(kpis.end, zone)} ({timezone})",
        f"  enterprises            {', '.join(kpis.enterprises) or '(none)'}",
        f"  alarms                 {kpis.alarms}",
        f"  per 10 min             avg {kpis.per_10min_avg:.2f}  peak {kpis.per_10min_peak}"
        "  (target ≈ 1 on average)",
        f"  per day                avg {kpis.per_day_avg:.1f}  peak {kpis.per_day_peak}",
        f"  floods                 {len(kpis.floods)}, {kpis.flood_time_pct:.2f} % of the time"
        " (target < 1 %)",
    ]
    for flood in kpis.floods[:rows]:
        end = "(ongoing)" if flood.ongoing else _when(flood.end, zone)  # not the range's end, maybe ahead
        start = _when(flood.start, zone)
        lines.append(f"    {start} → {end}  {flood.alarms} alarms, peak {flood.peak_10min} in 10 min")
    lines.append(
        f"  top {len(kpis.bad_actors):<2} bad actors      {kpis.bad_actor_share_pct:.1f} % of all alarms"
        " (target < 5 %)"
    )
    lines += [f"    {b.source:<36} {b.alarms}" for b in kpis.bad_actors]
    lines += [
        f"  chattering             {len(kpis.chattering)} sources, {kpis.chattering_alarms} alarms",
        f"  fleeting               {kpis.fleeting}",
        f"  stale (> 24 h)         {len(kpis.stale)}",
    ]
    lines += [
        f"    #{s.alarm_id} {s.source} {s.state} since {_when(s.active_since, zone)}"
        for s in kpis.stale[:rows]
    ]
    split = "  ".join(
        f"{PRIORITY_NAMES[p]} {pct:.1f} % (target {PRIORITY_TARGETS[p]})"
        for p, pct in kpis.priority_pct.items()
    )
    lines += [
        f"  priority               {split}",
        _distribution("time to acknowledge", kpis.time_to_ack),
        _distribution("time to feedback", kpis.time_to_feedback),
    ]
    if kpis.online is not None:
        online = kpis.online
        lines.append(
            f"  online rate            {online.rate * 100:.1f} %"
            f"  ({online.received} of {online.expected} readings)"
        )
    return "\n".join(lines)
