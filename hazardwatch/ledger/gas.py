"""Default gas alarm limits (GB/T 50493-2019) and the check of a gas tag's limits against them.

Combustible gas: first level at 25 % LEL, second at 50 % LEL. Toxic gas: first level at 100 %
of the occupational exposure limit (OEL, GBZ 2.1-2019: MAC where one is set, else PC-STEL, else
PC-TWA), second at 200 %. A toxic gas not in the table below is accepted with the limits the
ledger gives it. OELs are in mg/m³; for a detector reading ppm they are converted at
25 ℃ and 101.325 kPa (molar volume 24.45 L/mol).
"""

from __future__ import annotations

from dataclasses import dataclass

COMBUSTIBLE_FIRST_PCT_LEL = 25.0
COMBUSTIBLE_SECOND_PCT_LEL = 50.0
MOLAR_VOLUME_L = 24.45


@dataclass(frozen=True, slots=True)
class ToxicGas:
    """Occupational exposure limits of GBZ 2.1-2019 (mg/m³; None where it sets none) and molar mass."""

    molar_mass: float  # g/mol
    mac: float | None = None  # 最高容许浓度
    pc_stel: float | None = None  # 短时间接触容许浓度
    pc_twa: float | None = None  # 时间加权平均容许浓度

    @property
    def oel_mg_m3(self) -> float:
        """The OEL the alarms follow: MAC where one is set, else PC-STEL, else PC-TWA."""
        for limit in (self.mac, self.pc_stel, self.pc_twa):
            if limit is not None:
                return limit
        raise ValueError("a toxic gas needs at least one occupational exposure limit")


# name in the ledger (Chinese name, formula or English name) → OELs (GBZ 2.1-2019 表1) and molar mass
TOXIC_GASES: dict[str, ToxicGas] = {}
for _names, _gas in (
    (("氨", "氨气", "NH3", "ammonia"), ToxicGas(17.03, pc_twa=20.0, pc_stel=30.0)),
    (("氯", "氯气", "Cl2", "chlorine"), ToxicGas(70.90, mac=1.0)),
    (("硫化氢", "H2S", "hydrogen sulfide"), ToxicGas(34.08, mac=10.0)),
    (("一氧化碳", "CO", "carbon monoxide"), ToxicGas(28.01, pc_twa=20.0, pc_stel=30.0)),  # 非高原
    (("氯化氢", "HCl", "hydrogen chloride"), ToxicGas(36.46, mac=7.5)),
    (("氰化氢", "HCN", "hydrogen cyanide"), ToxicGas(27.03, mac=1.0)),  # as CN
    (("光气", "碳酰氯", "COCl2", "phosgene"), ToxicGas(98.92, mac=0.5)),
    (("二氧化硫", "SO2", "sulfur dioxide"), ToxicGas(64.07, pc_twa=5.0, pc_stel=10.0)),
    (("二氧化氮", "NO2", "nitrogen dioxide"), ToxicGas(46.01, pc_twa=5.0, pc_stel=10.0)),
    (("苯", "C6H6", "benzene"), ToxicGas(78.11, pc_twa=6.0, pc_stel=10.0)),
):
    for _name in _names:
        TOXIC_GASES[_name.lower()] = _gas


def toxic_gas(name: str | None) -> ToxicGas | None:
    return TOXIC_GASES.get(name.strip().lower()) if name else None


def default_limits(kind: str, gas: str | None, unit: str) -> tuple[float, float] | None:
    """(first level, second level) in the tag's unit, or None when no default applies."""
    normalized = unit.replace(" ", "").lower()
    if kind == "gas_combustible" and normalized == "%lel":
        return COMBUSTIBLE_FIRST_PCT_LEL, COMBUSTIBLE_SECOND_PCT_LEL
    if kind != "gas_toxic":
        return None
    spec = toxic_gas(gas)
    if spec is None:
        return None
    if normalized in ("mg/m³", "mg/m3"):
        first = spec.oel_mg_m3
    elif normalized == "ppm":
        first = round(spec.oel_mg_m3 * MOLAR_VOLUME_L / spec.molar_mass, 3)
    else:
        return None
    return first, 2 * first


def findings(kind: str, gas: str | None, unit: str, h: float | None, hh: float | None) -> list[str]:
    """What a regulator would flag in a gas tag's limits (empty when they are fine)."""
    if kind not in ("gas_combustible", "gas_toxic"):
        return []
    defaults = default_limits(kind, gas, unit)
    problems = []
    if defaults is None:
        if kind == "gas_toxic" and toxic_gas(gas) is None:
            # limits given explicitly are the plant's to set: only their absence is a finding
            if h is None or hh is None:
                problems.append(f"toxic gas {gas!r} has no known OEL: give its limits (h and hh) explicitly")
            return problems
        if kind == "gas_combustible":
            problems.append(f"combustible gas detector in {unit!r}: expected %LEL")
        else:
            problems.append(f"toxic gas detector in {unit!r}: expected mg/m³ or ppm")
        if h is None or hh is None:
            problems.append("gas tag without first- and second-level limits (h and hh)")
        return problems
    first, second = defaults
    if h is None or hh is None:
        problems.append(f"gas tag without h/hh limits: the defaults {first:g}/{second:g} {unit} apply")
    if h is not None and h > first:
        problems.append(f"first-level limit h = {h:g} {unit} is above {first:g} {unit} (GB/T 50493-2019)")
    if hh is not None and hh > second:
        problems.append(f"second-level limit hh = {hh:g} {unit} is above {second:g} {unit} (GB/T 50493-2019)")
    return problems
