"""Hostile and random specs: a user mistake is one ``error:`` line, never a traceback or a hang.

Three layers: a table of inputs that once crashed or hung (read in process, then by
``python -m kubetune validate`` in a process with bounded memory), and hypothesis fuzzing of
spec dicts and of YAML texts (each example either validates, plans and counts its space, or
raises :class:`~kubetune.errors.KubetuneError`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kubetune
from kubetune.core.plan import plan_search
from kubetune.core.space import build_grid, count_configs
from kubetune.core.spec import MAX_SPEC_BYTES, load_spec, parse_spec
from kubetune.errors import KubetuneError, SpecError

pytestmark = pytest.mark.reliability  # part of the suite: pytest -m reliability

# No trainer: these specs test the spec and its space, which validate checks without one
# (with a trainer, it would also refuse params the trainer does not take).
BASE = """\
name: f
objective: {metric: val_accuracy}
limits: {max_trials: 5}
"""
SPACE = "search_space: {k: [1, 2]}\n"


def limits(extra: str) -> str:
    return BASE.replace("max_trials: 5", f"max_trials: 5, {extra}") + SPACE


def space(*lines: str) -> str:
    return BASE + "search_space:\n" + "".join(f"  {line}\n" for line in lines)


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


# (id, spec file content, a fragment of the one error line that names the field/place)
HOSTILE: list[tuple[str, str | bytes, str]] = [
    ("non-utf8", (BASE + SPACE).encode() + b"# caf\xe9\n", "not UTF-8 text: byte 0xe9 at line 5"),
    ("nul-char", BASE + SPACE + 'x: "\x00"\n', "line 5: character U+0000 is not allowed"),
    ("seed-past-32-bits", BASE + SPACE + "seed: 4294967296\n", "seed: Input should be less"),
    ("timeout-list", limits("timeout: [1, 2]"), "limits.timeout: expected a duration"),
    ("timeout-mapping", limits("timeout: {a: 1}"), "limits.timeout: expected a duration"),
    ("timeout-date", limits("timeout: 2024-01-01"), "limits.timeout: expected a duration"),
    ("timeout-400-digits", limits("timeout: " + "9" * 400), "limits.timeout: must be at most"),
    ("timeout-text-400-digits", limits(f'timeout: "{"9" * 400}s"'), "limits.timeout: must be"),
    ("trial-timeout-inf", limits("trial_timeout: .inf"), "limits.trial_timeout: must be at most"),
    ("timeout-nan", limits("timeout: .nan"), "limits.timeout: must be a positive duration"),
    ("int-tag-on-text", BASE + "search_space: {k: !!int abc}\n", "'abc' is not a valid !!int"),
    ("float-tag-on-text", BASE + "search_space: {k: !!float x}\n", "'x' is not a valid !!float"),
    ("bool-tag-on-text", BASE + SPACE + "seed: !!bool maybe\n", "'maybe' is not a valid !!bool"),
    ("timestamp-tag", BASE + SPACE + "seed: !!timestamp x\n", "'x' is not a valid !!timestamp"),
    (
        "int-past-2-53",
        space("k: {type: int, low: 0, high: 1000000000000000000000000000000}"),
        "search_space.k.high: must be between -2**53 and 2**53",
    ),
    (
        "float-step-1e-300",
        space("k: {type: float, low: 0, high: 1, step: 1.0e-300}"),
        "search_space.k.step: 1e-300 cuts [0.0, 1.0] into more than 2**53 values",
    ),
    (
        "float-range-overflows",
        space("k: {type: float, low: -1.0e308, high: 1.0e308}"),
        "search_space.k.high: high - low must be a finite number",
    ),
    (
        "grid-points-huge",
        BASE + "search_space: {k: {type: float, low: 0, high: 1}}\n"
        "strategy: {name: grid, grid_points: 1000000000000}\n",
        "strategy.grid_points: must be <= 10000",
    ),
    (
        "emoji-param-name",
        BASE + "search_space: {k\U0001f600: [1, 2]}\n",
        "search_space: parameter name 'k\U0001f600' must be 1-64 ASCII letters",
    ),
    (
        "param-name-with-dash",
        space("learning-rate: [1, 2]"),
        "search_space: parameter name 'learning-rate' must be",
    ),
    ("nested-500-deep", BASE + f"search_space: {{k: {nested(500)}}}\n", "nested more than 64"),
    (
        "nested-list-choice",
        BASE + f"search_space: {{k: {nested(3)}}}\n",
        "search_space.k.choices: choice 0 is a list; choices must be strings, numbers",
    ),
    ("null-choice", space("k: [1, ~]"), "search_space.k.choices: choice 1 is null"),
    ("nan-choice", space("k: [1, .nan]"), "search_space.k.choices: choice 1 is nan"),
    (
        "list-in-condition",
        space("a: [1, 2]", "b: {type: int, low: 0, high: 3, when: {a: [[1]]}}"),
        "search_space.b.when: the value for 'a' must be one of strings, numbers",
    ),
    (
        "2500-params",
        BASE + "search_space:\n" + "".join(f"  p{i}: [1, 2]\n" for i in range(2500)),
        "search_space: 2500 parameters; at most 1000",
    ),
    (
        "per-layer-count-1e6",
        space(
            "n: {type: int, low: 1, high: 1000000}",
            "u: {type: int, low: 1, high: 3, per_layer: n}",
        )
        + "strategy: {name: grid}\n",
        "search_space.n.high: a layer count must be <= 64 (got 1000000",
    ),
    (
        "duplicate-key",
        BASE + SPACE + "seed: 1\nseed: 2\n",
        "line 6, column 1: duplicate key 'seed' (first at line 5)",
    ),
    (
        "duplicate-param",
        space("k: [1, 2]", "j: [1, 2]", "k: [3, 4]"),
        "line 7, column 3: duplicate key 'k' (first at line 5)",
    ),
    (
        "per-layer-name-collides",
        space(
            "n: {type: int, low: 1, high: 3}",
            "u: {type: int, low: 1, high: 3, per_layer: n}",
            "u_0: [1, 2]",
        ),
        "search_space.u.per_layer: its layer 'u_0' has the same name as parameter 'u_0'",
    ),
    (
        "alias-bomb",
        BASE
        + SPACE
        + "x0: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(
            f"x{i}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 10)}]\n" for i in range(1, 7)
        ),
        "more than 100000 values (aliases counted at every use)",
    ),
    ("recursive-alias", BASE + SPACE + "x: &a [1, *a]\n", "alias *a is inside its own anchor"),
    ("huge-file", BASE + SPACE + "#" * (MAX_SPEC_BYTES + 1), "spec file is larger than 256 KiB"),
]

# Valid specs that used to hang, growing to GBs: they must validate within seconds. (With a
# large max_trials, the auto strategy counts the space up to max_trials configs.)
SLOW_VALID: list[tuple[str, str]] = [
    (
        "huge-int-range-in-condition",
        space(
            "a: {type: int, low: 0, high: 100000000000}",
            "b: {type: int, low: 0, high: 3, when: {a: 5}}",
        ).replace("max_trials: 5", "max_trials: 100000000"),
    ),
    (
        "tiny-float-step-in-condition",
        space(
            "a: {type: float, low: 0, high: 1, step: 1.0e-12}",
            "b: {type: int, low: 0, high: 3, when: {a: 0.5}}",
        ).replace("max_trials: 5", "max_trials: 100000000"),
    ),
    (
        "grid-of-64-layers",
        space(
            "n: {type: int, low: 1, high: 64}",
            "u: {type: int, low: 1, high: 3, per_layer: n}",
        )
        + "strategy: {name: grid}\n",
    ),
    (
        "chain-of-999-conditions",
        space(
            "p0: [0, 1]",
            *(
                f"p{i}: {{type: categorical, choices: [0, 1], when: {{p{i - 1}: 0}}}}"
                for i in range(1, 999)
            ),
        ),
    ),
]


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# --- in process ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"), [(c, e) for _, c, e in HOSTILE], ids=[i for i, _, _ in HOSTILE]
)
def test_hostile_spec_is_one_spec_error(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = _write(tmp_path / "spec.yaml", content)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        spec = load_spec(path)
        plan_search(spec)  # grid_points is refused when the sampler is built
    assert time.perf_counter() - start < 2.0
    assert expected in str(info.value), str(info.value)
    assert len(str(info.value).splitlines()) <= 2  # a header line and the problem


@pytest.mark.parametrize(
    ("content",), [(c,) for _, c in SLOW_VALID], ids=[i for i, _ in SLOW_VALID]
)
def test_huge_ranges_and_long_chains_are_counted_quickly(tmp_path: Path, content: str) -> None:
    spec = load_spec(_write(tmp_path / "spec.yaml", content))
    start = time.perf_counter()
    try:
        plan_search(spec)
    except SpecError as exc:  # a grid too large to build is refused, quickly
        assert "strategy: the" in str(exc)
    size = spec.space.cardinality(cap=100_000)
    assert size is None or size > 0
    assert time.perf_counter() - start < 2.0


def test_every_space_and_fidelity_problem_is_reported_at_once() -> None:
    data = {
        "name": "f",
        "objective": {"metric": "loss"},
        "fidelity": {"param": "a", "min": 10, "max": 9},
        "search_space": {
            "a": {"type": "int", "low": 0, "high": 3, "when": {"zz": 1}},
            "b": {"type": "int", "low": 0, "high": 3, "per_layer": "yy"},
            "c": {"type": "categorical", "choices": [1, 2], "when": {"a": 7}},
            "d": {"type": "int", "low": 0, "high": 3, "when": {"d": 1}},
            "n": {"type": "int", "low": 0, "high": 100},
            "e": {"type": "int", "low": 0, "high": 3, "per_layer": "n"},
        },
    }
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    lines = str(info.value).splitlines()[1:]
    assert lines == [
        "search_space.a.when: refers to unknown parameter 'zz' (known: a, b, c, d, e, n)",
        "search_space.b.per_layer: refers to unknown parameter 'yy'",
        "search_space.c.when: a can never be 7 (range: [0, 3])",
        "search_space.d.when: a parameter cannot depend on itself",
        "search_space.n.high: a layer count must be <= 64 (got 100; 'e' has one value per layer)",
        "fidelity.min: must be <= max (10 > 9)",
        "fidelity.param: 'a' is the budget; remove it from search_space (the scheduler sets it)",
    ]


def test_every_colliding_layer_name_is_reported() -> None:
    raw = {
        "n": {"type": "int", "low": 1, "high": 12},
        "u": {"type": "categorical", "choices": [1, 2], "per_layer": "n"},
        "u_1": 5,  # a fixed value still shares the name space
        "u_11": [1, 2],
        "u_12": [1, 2],  # n is at most 12: u_0...u_11, so no clash
    }
    with pytest.raises(SpecError) as info:
        parse_spec({"name": "f", "objective": {"metric": "loss"}, "search_space": raw})
    assert str(info.value).splitlines()[1:] == [
        f"search_space.u.per_layer: its layer 'u_{i}' has the same name as parameter 'u_{i}';"
        " rename one"
        for i in (1, 11)
    ]


def test_merge_keys_may_override_and_valid_names_pass(tmp_path: Path) -> None:
    text = (
        "name: f\nobjective: {metric: loss}\n"
        "search_space:\n"
        "  depth: &d {type: int, low: 0, high: 3}\n"
        "  n_layers: {<<: *d, high: 4}\n"  # a merged key overridden: not a duplicate key
        "  _private2: [1, 2]\n"
        f"  {'x' * 64}: [1, 2]\n"
    )
    spec = load_spec(_write(tmp_path / "s.yaml", text))
    assert spec.search_space["n_layers"].high == 4  # type: ignore[union-attr]
    with pytest.raises(SpecError, match=r"parameter name 'x+\.\.\. must be"):
        load_spec(_write(tmp_path / "s.yaml", text.replace("x" * 64, "x" * 65)))


def test_one_thousand_parameters_are_fine() -> None:
    raw = {f"p{i}": [0, 1] for i in range(1000)}
    start = time.perf_counter()
    spec = parse_spec({"name": "f", "objective": {"metric": "loss"}, "search_space": raw})
    size = spec.space.cardinality(cap=100_000)
    assert size is not None and size > 100_000
    assert time.perf_counter() - start < 2.0


def test_counting_gives_up_past_its_budget_but_stays_exact_below() -> None:
    chain = {"p0": [0, 1]} | {
        f"p{i}": {"type": "categorical", "choices": [0, 1], "when": {f"p{i - 1}": 0}}
        for i in range(1, 200)
    }
    spec = parse_spec({"name": "f", "objective": {"metric": "loss"}, "search_space": chain})
    assert count_configs(spec.space, points=None) == 201 == len(build_grid(spec.space))


# --- as a process --------------------------------------------------------------------

_SRC = str(Path(kubetune.__file__).resolve().parents[1])
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
_MEMORY_LIMIT = 2 * 1024**3

# The inputs of issue 7, items 8 and 9, each run as `python -m kubetune validate`.
IN_A_PROCESS = {
    "non-utf8",
    "seed-past-32-bits",
    "timeout-list",
    "timeout-mapping",
    "timeout-date",
    "timeout-400-digits",
    "int-tag-on-text",
    "float-tag-on-text",
    "int-past-2-53",
    "float-step-1e-300",
    "grid-points-huge",
    "emoji-param-name",
    "nested-500-deep",
    "2500-params",
    "per-layer-count-1e6",
    "duplicate-key",
    "per-layer-name-collides",
    "alias-bomb",
    "huge-file",
}


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str
    seconds: float
    rss_kib: int  # the child's own peak resident memory


def _limit_memory() -> None:  # in the child, before it runs kubetune
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))


def _validate_all(
    folder: Path, cases: dict[str, str | bytes], parallel: int = 3, timeout: float = 60.0
) -> dict[str, Finished]:
    """Run ``kubetune validate`` on every case, a few at a time (each is mostly imports)."""
    pending = list(cases.items())
    running: dict[int, tuple[str, subprocess.Popen[bytes], float, Path]] = {}
    done: dict[str, Finished] = {}
    while pending or running:
        while pending and len(running) < parallel:
            case_id, content = pending.pop(0)
            path = _write(folder / f"{case_id}.yaml", content)
            with (
                path.with_suffix(".out").open("wb") as out,
                path.with_suffix(".err").open("wb") as err,
            ):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "kubetune", "validate", path.name],
                    stdout=out,
                    stderr=err,
                    env=_ENV,
                    cwd=folder,
                    preexec_fn=_limit_memory,
                )
            running[proc.pid] = (case_id, proc, time.monotonic(), path)
        for pid, (case_id, proc, start, path) in list(running.items()):
            # wait4, not wait: it says how much memory this one child took.
            finished, status, usage = os.wait4(pid, os.WNOHANG)
            seconds = time.monotonic() - start
            if not finished and seconds < timeout:
                continue
            if not finished:
                proc.kill()
                _, status, usage = os.wait4(pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            done[case_id] = Finished(
                proc.returncode,
                path.with_suffix(".out").read_text(errors="replace"),
                path.with_suffix(".err").read_text(errors="replace"),
                seconds,
                usage.ru_maxrss,
            )
            del running[pid]
        time.sleep(0.01)
    return done


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    cases = {i: c for i, c, _ in HOSTILE if i in IN_A_PROCESS} | dict(SLOW_VALID)
    return _validate_all(tmp_path_factory.mktemp("validate"), cases)


@pytest.mark.parametrize(
    ("case_id", "expected"),
    [(i, e) for i, _, e in HOSTILE if i in IN_A_PROCESS],
    ids=[i for i, _, _ in HOSTILE if i in IN_A_PROCESS],
)
def test_validate_process_prints_one_error_line(
    validated: dict[str, Finished], case_id: str, expected: str
) -> None:
    result = validated[case_id]
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors == result.err.splitlines()[:1]  # one error line, and it comes first
    assert expected in result.err
    assert result.out == ""
    assert result.seconds < 20  # about half a second, mostly imports; generous for busy CI
    assert result.rss_kib < 1024**2  # under 1 GiB (about 150 MB); the address space is 2 GiB


@pytest.mark.parametrize("case_id", [i for i, _ in SLOW_VALID])
def test_validate_process_counts_huge_spaces_quickly(
    validated: dict[str, Finished], case_id: str
) -> None:
    result = validated[case_id]
    assert "Traceback" not in result.err
    grid_refused = result.code == 2 and result.err.startswith("error: strategy: the grid")
    assert result.code == 0 or grid_refused, result.err
    assert result.seconds < 20 and result.rss_kib < 1024**2


def test_validate_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    # `kubetune validate spec.yaml | head -1`: head is gone before kubetune writes.
    text = BASE + "search_space:\n" + "".join(f"  p{i}: [1, 2]\n" for i in range(300))
    path = _write(tmp_path / "spec.yaml", text)
    read, write = os.pipe()
    os.close(read)  # the reader has left
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kubetune", "validate", str(path)],
            stdout=write,
            stderr=subprocess.PIPE,
            env=_ENV,
            timeout=60,
        )
    finally:
        os.close(write)
    assert proc.returncode == 141  # 128 + SIGPIPE, as a shell reports `yes | head -1`
    assert proc.stderr == b""


# --- fuzzing -------------------------------------------------------------------------

FUZZ = settings(
    max_examples=int(os.environ.get("KUBETUNE_FUZZ_EXAMPLES", "250")),
    deadline=10_000,  # ms per example: a hang or a blow-up shows as a deadline error (roomy:
    # a shared, loaded machine must not turn a slow example into a flaky failure)
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HUGE_INTS = st.sampled_from([2**31, 2**32, 2**53, 2**53 + 1, 2**63, 2**64, 10**30, 10**400])
NASTY_TEXT = st.sampled_from(
    ["", " ", "\U0001f600", "a\x00b", "1e5", "10m", "-5s", "9" * 400, "sgd", "u_0", "n", "a" * 300]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.integers(),
    HUGE_INTS,
    HUGE_INTS.map(lambda v: -v),
    st.floats(),
    st.sampled_from([1e-300, 5e-324, 1e308, -0.0, 0.5, 1e-12]),
    st.text(max_size=12),
    NASTY_TEXT,
    st.dates(),
    st.datetimes(),
    st.sampled_from([[], {}]),
)
ANY = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=4)
        | st.dictionaries(st.text(max_size=6), inner, min_size=1, max_size=4)
    ),
    max_leaves=12,
)
DEEP = st.integers(1, 1500).map(lambda depth: _nest(depth))
NAMES = st.one_of(
    st.sampled_from(["a", "b", "n", "u", "u_0", "u_1", "x", "lr"]), st.text(max_size=6)
)
INTS = st.one_of(
    st.integers(-2, 70), st.sampled_from([0, 1, 64, 65, 1000, 10**6, 10**11]), HUGE_INTS
)
FLOATS = st.one_of(
    st.floats(-10, 10),
    st.sampled_from([0.0, 1e-12, 1e-300, 5e-324, 1e308, -1e308, float("inf"), float("nan")]),
    INTS,
)
WHEN = st.dictionaries(NAMES, SCALARS | st.lists(SCALARS, max_size=3), max_size=2)


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _maybe(strategy: st.SearchStrategy[Any], weird: st.SearchStrategy[Any] = ANY) -> Any:
    """Mostly ``strategy``, sometimes anything at all (so that some specs get to planning)."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda ok: strategy if ok else weird)


COMMON = {"when": _maybe(WHEN), "per_layer": _maybe(NAMES)}
PARAMS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("int"), "low": _maybe(INTS), "high": _maybe(INTS)},
        optional={"step": _maybe(INTS), "log": _maybe(st.booleans()), **COMMON},
    ),
    st.fixed_dictionaries(
        {"type": st.just("float"), "low": _maybe(FLOATS), "high": _maybe(FLOATS)},
        optional={"step": _maybe(FLOATS), "log": _maybe(st.booleans()), **COMMON},
    ),
    st.fixed_dictionaries(
        {"type": st.just("categorical"), "choices": _maybe(st.lists(SCALARS, max_size=6))},
        optional=COMMON,
    ),
    st.fixed_dictionaries({"type": st.just("fixed"), "value": ANY}, optional={"when": WHEN}),
    st.lists(st.integers(0, 5) | NASTY_TEXT | st.booleans(), max_size=5),  # shorthands
    SCALARS,
    DEEP,
    ANY,
)
SPACES = st.one_of(
    st.dictionaries(NAMES, PARAMS, min_size=1, max_size=6),
    st.integers(990, 1010).map(lambda n: {f"p{i}": [0, 1] for i in range(n)}),
    st.integers(1, 300).map(
        lambda n: (
            {"p0": [0, 1]}
            | {
                f"p{i}": {"type": "categorical", "choices": [0, 1], "when": {f"p{i - 1}": 0}}
                for i in range(1, n)
            }
        )
    ),
    ANY,
)
STRATEGY = st.fixed_dictionaries(
    {
        "name": _maybe(
            st.sampled_from(["auto", "grid", "random", "tpe", "gp", "cmaes", "qmc", "evolution"])
        )
    },
    optional={
        "grid_points": _maybe(INTS),
        "population_size": _maybe(INTS),
        "sample_size": _maybe(INTS),
        "n_startup_trials": _maybe(INTS),
        "shuffle": ANY,
    },
)
LIMITS = st.fixed_dictionaries(
    {},
    optional={
        "max_trials": _maybe(INTS),
        "timeout": _maybe(
            st.one_of(INTS, FLOATS, NASTY_TEXT, st.sampled_from(["10m", "1h30m", "0s"]))
        ),
        "trial_timeout": ANY,
        "patience": _maybe(INTS),
        "parallel": _maybe(INTS),
        "retries": _maybe(INTS),
    },
)
FIDELITY = st.fixed_dictionaries(
    {"param": _maybe(NAMES), "max": _maybe(INTS)},
    optional={
        "min": _maybe(INTS),
        "reduction_factor": _maybe(INTS),
        "scheduler": _maybe(st.sampled_from(["auto", "hyperband", "asha", "median", "none"])),
    },
)
SPECS = st.fixed_dictionaries(
    {
        "name": _maybe(st.just("f")),
        "objective": _maybe(
            st.fixed_dictionaries({"metric": st.sampled_from(["loss", "accuracy"])}),
            st.fixed_dictionaries({"metric": ANY}, optional={"direction": ANY, "target": ANY}),
        ),
        "search_space": SPACES,
    },
    optional={
        "strategy": _maybe(STRATEGY),
        "limits": _maybe(LIMITS),
        "fidelity": _maybe(FIDELITY),
        "seed": _maybe(INTS),
        "data": _maybe(st.just({"source": "x.csv"})),
    },
)


def _use(spec_or_data: Any) -> None:
    """What ``validate`` and ``run`` do before the first trial: plan, count, describe."""
    spec = spec_or_data if not isinstance(spec_or_data, dict) else parse_spec(spec_or_data)
    plan_search(spec)
    spec.space.cardinality(cap=100_000)
    spec.space.distributions()
    list(spec.space.describe())


@FUZZ
@given(SPECS)
def test_any_spec_dict_validates_or_is_a_spec_error(data: dict[str, Any]) -> None:
    with contextlib.suppress(KubetuneError):
        _use(data)


@pytest.fixture(scope="module")
def spec_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


GOOD_TEXT = space(
    "n: {type: int, low: 1, high: 3}",
    "u: {type: categorical, choices: [16, 32], per_layer: n}",
    "opt: [sgd, adam]",
    "m: {type: float, low: 0, high: 1, step: 0.25, when: {opt: sgd}}",
)
SNIPPETS = st.sampled_from(
    [
        "!!int abc", "!!float x", "!!bool y", "!!timestamp t", "!!binary ##", "!!set {a}",
        "!!omap [a]", "!!python/object:os.system", "*nope", "&a [*a]", "2024-01-01",
        "9" * 400, "{a: 1, a: 2}", "[[[[[[[[", "? [1]\n: 2", "<<: 5", ".nan", "-.inf", "0x1F",
        "0o17", "1_000", "~", "'\U0001f600'", "[1, [2]]", "{}", "[]", "\t", "|\n  x", "---\n-",
        nested(80), "1e400", "-0", "!!str 5",
    ]
)  # fmt: skip


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(GOOD_TEXT)),
            st.one_of(SNIPPETS, st.binary(max_size=4), st.text(max_size=4)),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_any_spec_text_loads_or_is_a_spec_error(
    spec_dir: Path, edits: list[tuple[int, Any]]
) -> None:
    raw = GOOD_TEXT.encode()
    for at, piece in edits:
        raw = raw[:at] + (piece if isinstance(piece, bytes) else piece.encode()) + raw[at:]
    path = spec_dir / "spec.yaml"
    path.write_bytes(raw)
    with contextlib.suppress(KubetuneError):
        _use(load_spec(path))


def test_the_fuzzed_text_starts_as_a_valid_spec(spec_dir: Path) -> None:
    _use(load_spec(_write(spec_dir / "good.yaml", GOOD_TEXT)))
