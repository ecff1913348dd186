"""Units of measurement: which spellings exist, and the affine factor between two units.

pint answers both, at profile load only; the hot path sees plain floats. Importing pint
costs ~14 MB of RSS for the life of the process (its modules stay), so the answers for the
shipped profiles' units and the common ones are a table pint wrote (unit_table.py, checked
against pint by tests/test_units.py): a gateway whose profiles use only those never imports
pint. Its registry is large too (~4 MB of Python objects), so `forget_unit_registry()` lets it
go after a load: the answers stay cached per unit text.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.profiles.unit_table import CONVERSIONS, KNOWN_UNITS


@cache
def known_unit(unit: str) -> None:
    """Raise ValueError unless pint knows `unit` (units are case-sensitive: kWh, not kwh)."""
    if unit not in KNOWN_UNITS:
        pint_known_unit(unit)


def pint_known_unit(unit: str) -> None:
    try:
        _unit_registry().Unit(unit)
    # Besides UndefinedUnitError, pint's expression parser lets through whatever its tokenizer
    # hits on malformed text ('m/' AssertionError, '(' TokenError, '1/0' ZeroDivisionError).
    # Load time only, and the message names the unit.
    except Exception as exc:  # noqa: BLE001  # pint raises many types on bad text (see above)
        detail = str(exc) or "not a unit expression"
        raise ValueError(
            f"unknown unit {unit!r} ({detail}); pint spells units like V, kWh, degC, m^3/h, "
            "percent, dBm (case matters)"
        ) from None


@cache
def unit_conversion(unit: str, canonical: str) -> tuple[float, float]:
    """(factor, shift) such that canonical = value * factor + shift, as pint computes it."""
    found = CONVERSIONS.get((unit, canonical))
    return found if found is not None else pint_conversion(unit, canonical)


def pint_conversion(unit: str, canonical: str) -> tuple[float, float]:
    """pint is imported here, at load time only: it costs ~0.3 s to import and nothing per
    message."""
    import pint  # noqa: PLC0415  # deferred: only profiles with units pay for the import

    registry = _unit_registry()
    try:
        zero = registry.Quantity(0.0, unit).to(canonical).magnitude
        one = registry.Quantity(1.0, unit).to(canonical).magnitude
    except (pint.errors.UndefinedUnitError, pint.errors.DimensionalityError, AttributeError) as exc:
        raise ValueError(f"cannot convert {unit!r} to {canonical!r}: {exc}") from exc
    # pint goes through base units, so exact decimal factors arrive with float noise
    # (L/s -> m^3/h = 3.6000000000000005); unit definitions have far fewer than 12 digits.
    return round_12(float(one - zero)), round_12(float(zero))


def round_12(value: float) -> float:
    return float(f"{value:.12g}")


def forget_unit_registry() -> None:
    """Drop pint's registry once profiles are compiled. The answers above stay cached: a
    reload of the same profiles never needs pint again."""
    _unit_registry.cache_clear()


@cache
def _unit_registry() -> Any:
    import pint  # noqa: PLC0415  # see unit_conversion

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
