"""Parse human numbers: 7B, 770M, 2k, 1.5e4, $5,000, 24GB."""

from __future__ import annotations

import math
import re

from adaptkit.errors import brief

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)$", re.IGNORECASE)


MAX_NUMBER = 1e18  # no count, size, price or token total adaptkit weighs comes near this


def parse_number(value: object) -> float:
    """Return the number in `value`; strings may carry k/M/B/T suffixes, `$`, `,` and `_`."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {brief(value)}")
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or abs(value) <= MAX_NUMBER else math.inf
    elif isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "").lstrip("$").strip()
        match = _NUMBER.match(text)
        if not match:
            raise ValueError(f"expected a number like 500, 2k or 1.5M, got {brief(value)}")
        number = float(match.group(1)) * _SCALE[match.group(2).lower()]
    else:
        raise ValueError(f"expected a number, got {brief(value)}")
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise ValueError(f"expected a finite number up to 1e18, got {brief(value)}")
    return number


def parse_count(value: object) -> int:
    """Return a whole count: 500, 2k, 1e4."""
    number = parse_number(value)
    if number != int(number):
        raise ValueError(f"expected a whole number, got {brief(value)}")
    return int(number)


def parse_params_b(value: object) -> float:
    """Return a parameter count in billions: 7B -> 7, 770M -> 0.77, a bare 7 -> 7."""
    if isinstance(value, str) and value.strip() and value.strip()[-1].lower() in "kmbt":
        return parse_number(value) / 1e9
    return parse_number(value)


def parse_gigabytes(value: object) -> float:
    """Return gigabytes: 24, '24GB', '80 GiB'."""
    if isinstance(value, str):
        value = re.sub(r"\s*(gib|gb|g)$", "", value.strip(), flags=re.IGNORECASE)
    return parse_number(value)
