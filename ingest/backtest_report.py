"""A backtest's result: per subject and condition, the alarms live raised and those the rule set
would have raised, with their times, paired up to show the differences; as text or as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from hazardwatch.clock import utc_from_ms
from ingest.backtest_history import Change, Key
from rules.types import Subject

Name = tuple[str, str, str]  # enterprise code, subject code, condition

# what stored history cannot tell, and how the backtest takes it
NOTES = (
    "late data: live evaluates a reading only when newer than the last one evaluated for its tag, in "
    "the order readings arrived; readings keep no arrival time, so every stored reading is evaluated "
    "in source-time order, as if it had arrived on time (a replayed backlog live skipped is evaluated)",
    "steps: live decides which BAD_COMM readings a device-down covers, and stamps DEVICE_COMM, per "
    "step of what arrived together; the backtest steps one source instant at a time while a device "
    "is down or may go down",
    "clock: STALE and DEVICE_COMM raised by ingest's tick are replayed on a tick every 5 s on the "
    "whole 5 s; live ticked at its own phase, so such a time may differ by up to 5 s",
    "gateways offline: taken from the GATEWAY_OFFLINE alarms live raised (heartbeats are not "
    "stored); STALE under them is not raised, as live does",
    "out of service: only a tag's current period is known (since tags.oos_at); before it, and for "
    "tags in service now, the tag counts as in service throughout",
    "start: the state at --from is rebuilt as a restarted ingest does (readings before it warm up "
    "delays and windows, live's alarms active then set the levels); live ran the rules of its day",
)


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm: raised (None: active at the start), its level changes, cleared (None: still active)."""

    raised_ms: int | None
    levels: tuple[Change, ...]
    cleared_ms: int | None

    def span(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        return (start_ms if self.raised_ms is None else self.raised_ms,
                end_ms if self.cleared_ms is None else self.cleared_ms)  # fmt: skip


def alarms_of(changes: list[Change], level_at_start: int) -> list[Alarm]:
    out: list[Alarm] = []
    raised: int | None = None
    levels: list[Change] = []
    active = level_at_start > 0
    for c in changes:
        if c.level > 0:
            if not active:
                raised, levels, active = c.at_ms, [], True
            levels.append(c)
        elif active:
            out.append(Alarm(raised, tuple(levels), c.at_ms))
            raised, levels, active = None, [], False
    if active:
        out.append(Alarm(raised, tuple(levels), None))
    return out


@dataclass(slots=True)
class Comparison:
    """One subject's condition: live's alarms, the would-be alarms, and how they pair up."""

    subject: Subject
    name: Name
    live: list[Alarm]
    would: list[Alarm]
    same: list[Alarm] = field(default_factory=list)
    different: list[tuple[Alarm, Alarm]] = field(default_factory=list)
    only_live: list[Alarm] = field(default_factory=list)
    only_would: list[Alarm] = field(default_factory=list)

    def pair(self, start_ms: int, end_ms: int) -> None:
        """Pair alarms that overlap in time, in order; the rest stand alone."""
        i = j = 0
        while i < len(self.live) or j < len(self.would):
            if i == len(self.live):
                self.only_would.append(self.would[j])
                j += 1
                continue
            if j == len(self.would):
                self.only_live.append(self.live[i])
                i += 1
                continue
            a, b = self.live[i], self.would[j]
            (a0, a1), (b0, b1) = a.span(start_ms, end_ms), b.span(start_ms, end_ms)
            if a == b:
                self.same.append(a)
            elif a0 <= b1 and b0 <= a1:
                self.different.append((a, b))
            elif a0 < b0:
                self.only_live.append(a)
                j -= 1
            else:
                self.only_would.append(b)
                i -= 1
            i, j = i + 1, j + 1


@dataclass
class Report:
    start: datetime
    end: datetime
    readings: int = 0
    seconds: float = 0.0
    comparisons: list[Comparison] = field(default_factory=list)
    notes: tuple[str, ...] = NOTES

    @classmethod
    def build(cls, start: datetime, end: datetime, names: dict[tuple[Subject, int], tuple[str, str]],
              seeded: dict[Key, int], live: dict[Key, list[Change]], would: dict[Key, list[Change]],
              readings: int, seconds: float) -> Report:  # fmt: skip
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        report = cls(start, end, readings, seconds)
        for key in set(live) | set(would):
            subject, subject_id, condition = key
            enterprise, code = names.get((subject, subject_id), ("?", f"#{subject_id}"))
            level = seeded.get(key, 0)
            before, after = alarms_of(live.get(key, []), level), alarms_of(would.get(key, []), level)
            comparison = Comparison(subject, (enterprise, code, condition), before, after)
            if comparison.live or comparison.would:
                comparison.pair(start_ms, end_ms)
                report.comparisons.append(comparison)
        report.comparisons.sort(key=lambda c: c.name)
        return report

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0

    @property
    def raised(self) -> Counter[Name]:
        """Alarms live raised within the span, by subject and condition."""
        return Counter({c.name: n for c in self.comparisons if (n := _raised(c.live))})

    @property
    def would_raise(self) -> Counter[Name]:
        return Counter({c.name: n for c in self.comparisons if (n := _raised(c.would))})

    def rows(self) -> list[tuple[Name, int, int]]:
        """(name, raised live, would raise) of every subject and condition, most changed first."""
        rows = [(c.name, _raised(c.live), _raised(c.would)) for c in self.comparisons]
        return sorted(rows, key=lambda r: (-abs(r[2] - r[1]), r[0]))

    def totals(self) -> dict[str, int]:
        cs = self.comparisons
        return {"live": sum(len(c.live) for c in cs), "would": sum(len(c.would) for c in cs),
                "same": sum(len(c.same) for c in cs), "different": sum(len(c.different) for c in cs),
                "only_live": sum(len(c.only_live) for c in cs),
                "only_would": sum(len(c.only_would) for c in cs)}  # fmt: skip


def _raised(alarms: list[Alarm]) -> int:
    return sum(1 for a in alarms if a.raised_ms is not None)


# -- output ------------------------------------------------------------------------------------
def _time(ms: int | None, tz: tzinfo) -> str | None:
    return None if ms is None else utc_from_ms(ms).astimezone(tz).isoformat(timespec="milliseconds")


def alarm_dict(alarm: Alarm, tz: tzinfo) -> dict[str, object]:
    return {"raised": _time(alarm.raised_ms, tz), "cleared": _time(alarm.cleared_ms, tz),
            "levels": [{"at": _time(c.at_ms, tz), "level": c.level} for c in alarm.levels]}  # fmt: skip


def as_dict(report: Report, tz: tzinfo) -> dict[str, object]:
    """The report as JSON-ready data: times ISO 8601 in ``tz`` with their offset."""
    return {
        "from": _time(int(report.start.timestamp() * 1000), tz),
        "to": _time(int(report.end.timestamp() * 1000), tz),
        "readings": report.readings,
        "seconds": round(report.seconds, 3),
        "subjects": [
            {
                "subject": str(c.subject),
                "enterprise": c.name[0],
                "code": c.name[1],
                "condition": c.name[2],
                "live": [alarm_dict(a, tz) for a in c.live],
                "would": [alarm_dict(a, tz) for a in c.would],
                "differences": {
                    "only_live": [alarm_dict(a, tz) for a in c.only_live],
                    "only_would": [alarm_dict(a, tz) for a in c.only_would],
                    "different_times": [
                        {"live": alarm_dict(a, tz), "would": alarm_dict(b, tz)} for a, b in c.different
                    ],
                },
            }
            for c in report.comparisons
        ],
        "totals": report.totals(),
        "notes": list(report.notes),
    }


def _describe(alarm: Alarm, tz: tzinfo) -> str:
    raised = "active at the start" if alarm.raised_ms is None else f"raised {_time(alarm.raised_ms, tz)}"
    steps = [f"level {c.level}" if c.at_ms == alarm.raised_ms else f"level {c.level} at {_time(c.at_ms, tz)}"
             for c in alarm.levels]  # fmt: skip
    cleared = "still active" if alarm.cleared_ms is None else f"cleared {_time(alarm.cleared_ms, tz)}"
    return ", ".join([raised, *steps, cleared])


def render_text(report: Report, tz: tzinfo) -> list[str]:
    """The count table, then per subject and condition the alarms and their differences, totals, notes."""
    lines = [f"  {report.readings:,} readings in {report.seconds:.2f} s ({report.rate:,.0f} readings/s)"]
    rows = report.rows()
    if not rows:
        lines.append("  no alarm raised, and none would be")
    lines.append(
        f"  {'enterprise':<12} {'subject':<14} {'condition':<11} {'raised':>7} {'would':>7} {'change':>7}"
    )
    for (enterprise, code, condition), raised, would in rows:
        lines.append(
            f"  {enterprise:<12} {code:<14} {condition:<11} {raised:>7} {would:>7} {would - raised:>+7}"
        )
    total_raised, total_would = sum(r for _, r, _ in rows), sum(w for _, _, w in rows)
    lines.append(f"  {'total':<39} {total_raised:>7} {total_would:>7} {total_would - total_raised:>+7}")
    for c in report.comparisons:
        lines.append("")
        lines.append(f"  {' '.join(c.name)} ({c.subject}): live {len(c.live)}, would-be {len(c.would)}")
        lines += [f"    same        {_describe(a, tz)}" for a in c.same]
        for a, b in c.different:
            lines.append(f"    live        {_describe(a, tz)}")
            lines.append(f"    would-be    {_describe(b, tz)}  (different times)")
        lines += [f"    only live   {_describe(a, tz)}" for a in c.only_live]
        lines += [f"    only would  {_describe(a, tz)}" for a in c.only_would]
    t = report.totals()
    lines.append("")
    lines.append(f"  alarms: live {t['live']}, would-be {t['would']}; the same {t['same']}, different "
                 f"times {t['different']}, only live {t['only_live']}, "
                 f"only would-be {t['only_would']}")  # fmt: skip
    lines.append("  what stored history cannot tell:")
    lines += [f"    - {note}" for note in report.notes]
    return lines
