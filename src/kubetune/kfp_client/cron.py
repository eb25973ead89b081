"""KFP's cron syntax, checked before a recurring run is created.

KFP schedules with robfig/cron (v1): **six** fields, seconds first
(``second minute hour day-of-month month day-of-week``), or a descriptor such as
``@daily`` or ``@every 6h``. A five-field crontab line, the usual mistake, would be refused
by the server only after the upload, or read one field off; it is refused here, with the
six-field spelling it most likely meant.
"""

from __future__ import annotations

import re

from kubetune.errors import KubetuneError

__all__ = ["CronError", "validate_cron"]

_FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
_NAMES = {
    5: {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6},
    4: {
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
}
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_FORMAT = (
    "KFP's cron has 6 fields, seconds first: 'second minute hour day-of-month month day-of-week'"
)


class CronError(KubetuneError):
    """The cron expression is not one KFP accepts."""


def validate_cron(expression: str) -> str:
    """The expression, stripped, when KFP accepts it; else CronError saying why."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            return text
        every = text.removeprefix("@every ").strip()
        if text.startswith("@every ") and _GO_DURATION.match(every):
            return text
        raise CronError(
            f"--cron {expression!r}: unknown descriptor; use one of"
            f" {', '.join(sorted(_DESCRIPTORS))} or '@every 6h', or {_FORMAT}"
        )
    fields = text.split(" ") if text else []
    if len(fields) != len(_FIELDS):
        hint = f"; did you mean '0 {text}'?" if len(fields) == 5 else ""
        raise CronError(
            f"--cron {expression!r}: {len(fields)} field{'s' * (len(fields) != 1)}; {_FORMAT}"
            f" (e.g. '0 0 3 * * *' for 03:00 every day){hint}"
        )
    for index, value in enumerate(fields):
        problem = _check_field(index, value)
        if problem:
            name = _FIELDS[index][0]
            raise CronError(f"--cron {expression!r}: {name} field {value!r}: {problem}; {_FORMAT}")
    return text


def _check_field(index: int, value: str) -> str | None:
    _, low, high = _FIELDS[index]
    if value == "?":
        return None if index in (3, 5) else "'?' is allowed only for day of month or week"
    for part in value.split(","):
        base, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return f"step {step!r} must be a positive number"
        if base == "*":
            continue
        ends = base.split("-")
        if len(ends) > 2 or not all(ends):
            return f"{part!r} is not a value, a range a-b, '*' or a step x/n"
        numbers = []
        for end in ends:
            number = _number(index, end)
            if number is None or not low <= number <= high:
                return f"{end!r} is not in {low}-{high}"
            numbers.append(number)
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            return f"range {base!r} runs backwards"
    return None


def _number(index: int, text: str) -> int | None:
    if text.isdigit():
        return int(text)
    return _NAMES.get(index, {}).get(text.lower())
