"""Soak: SIGKILL the controller of ``kubetune run`` many times in a row, resume, and count.

Each round is a fresh experiment (a custom trainer whose score is a known function of its
params). The controller is killed ``kills_per_round`` times at random points of three phases,
chosen at random per kill:

- ``startup``: any time from the start (imports, data, study creation, the first asks);
- ``search``: once at least one more trial has finished, after a further random delay, so
  kills land between ask and dispatch, while trials run and between a trial's end and its tell;
- ``push``: once every trial is done, during the final training and the push.

Then one run goes to the end undisturbed and the round is checked (see :func:`check_round`):

- ``lost``: a config whose last trial failed and was not retried (the objective never fails,
  so only the controller's deaths can fail a trial);
- ``duplicated``: a config completed twice (a finished trial both adopted and rerun);
- ``stuck``: a trial left RUNNING or WAITING after the undisturbed run;
- ``retries_lost``: a completed trial whose attempt counter grew, i.e. a retry spent on a
  controller death;
- ``deaths_in_a_row``: the most controller deaths one config sat through in a row (the loop
  lets ``MAX_CONTROLLER_DEATHS`` go free; this shows the margin left);
- ``wrong_best``: the study's or the summary's best is not the best completed value;
- ``bad_models``: a visible model version that does not pull (every file checked).

``kubernetes`` runs every trial as a Job on a SIMULATED cluster: the in-process API server
emulator (:mod:`kubetune.testing.k8s_emulator`) and kubelet (:mod:`kubetune.testing.kubelet`,
each pod a local ``kubetune trial`` process) live in this process, so they outlive every killed
controller, as a real cluster does: the Jobs a killed controller created keep running and the
next controller must adopt them (one cluster per round). ``worker-pool`` is the same executor
and simulated cluster in ``mode: worker-pool``: two warm worker pods (``kubetune worker``
processes) outlive every killed controller, wait for the next one, and the trials they ran
meanwhile must be adopted or read from their results, never run twice.

CI runs a few kills per executor (``tests/test_reliability_kills.py``); the soak runs 200::

    python benchmarks/kill_soak.py --kills 200 --executor local --executor subprocess \
        --executor kubernetes --executor worker-pool
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from kubetune.core.attrs import ATTEMPT, CONTROLLER_DEATHS, RETRIED, RETRY_OF
from kubetune.core.storage import journal_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

NAME = "soak"
PHASES = ("startup", "search", "push")
REPO_FLAG = ("--model-repo", "model-repo")

# The validation accuracy of a trial is a known function of its params: the model answers the
# first round(score * n) validation rows right and every other row wrong.
TRAINER = textwrap.dedent(
    """
    import json, time
    from pathlib import Path

    import numpy as np


    def score(params):
        return 1.0 - (params["x"] - 0.3) ** 2 - 0.5 * (params["y"] - 0.6) ** 2


    class Memo:
        def __init__(self, rows, labels, n_classes):
            self.known = {tuple(r): int(y) for r, y in zip(rows, labels)}
            self.n_classes = n_classes

        def predict(self, X):
            return np.array([self.known.get(tuple(r), -1) for r in np.asarray(X).tolist()])

        def save(self, directory):
            path = Path(directory) / "memo.json"
            path.write_text(json.dumps({"rows": list(map(list, self.known)),
                                        "labels": list(self.known.values()),
                                        "n_classes": self.n_classes}))
            return [path]


    def load(directory):
        saved = json.loads((Path(directory) / "memo.json").read_text())
        return Memo(saved["rows"], saved["labels"], saved["n_classes"])


    def train(*, params, data, budget, reporter, seed, final, metric):
        time.sleep(0.3)
        X, y = np.asarray(data.X_val).tolist(), np.asarray(data.y_val)
        right = int(round(min(max(score(params), 0.0), 1.0) * len(X)))
        wrong = (y + 1) % data.n_classes
        model = Memo(X, np.concatenate([y[:right], wrong[right:]]), data.n_classes)
        if not final:
            reporter.report(1, float(np.mean(model.predict(X) == y)))
        return model
    """
)
VALIDATION_ROWS = 30  # iris: 150 rows, a fifth for validation


EXECUTORS = ("local", "subprocess", "kubernetes", "worker-pool")
# on the SIMULATED cluster: the executor section's mode
_CLUSTER_MODES = {"kubernetes": "job-per-trial", "worker-pool": "worker-pool"}


def spec_text(executor: str, max_trials: int, parallel: int) -> str:
    """The round's spec; ``executor`` is the YAML of its ``executor`` section."""
    return textwrap.dedent(
        f"""
        name: {NAME}
        objective: {{metric: val_accuracy, direction: maximize}}
        data: {{source: "sklearn:iris"}}
        trainer: {{kind: custom, function: "soak_trainer:train"}}
        search_space:
          x: {{type: float, low: 0.0, high: 1.0}}
          y: {{type: float, low: 0.0, high: 1.0}}
        strategy: {{name: random}}
        executor: {executor}
        limits: {{max_trials: {max_trials}, parallel: {parallel}, trial_timeout: 1m}}
        seed: 0
        """
    )


def expected_value(params: dict[str, float]) -> float:
    """The validation accuracy the soak trainer's model gets for ``params``."""
    score = 1.0 - (params["x"] - 0.3) ** 2 - 0.5 * (params["y"] - 0.6) ** 2
    return round(min(max(score, 0.0), 1.0) * VALIDATION_ROWS) / VALIDATION_ROWS


@dataclass
class RoundResult:
    executor: str
    kills: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    # what the kills hit, read from the study right after each kill
    running_at_kill: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    retries_lost: int = 0
    deaths_in_a_row: int = 0
    wrong_best: int = 0
    bad_models: int = 0
    completed: int = 0
    trials: int = 0
    final_returncode: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems and self.final_returncode == 0


@contextmanager
def executor_section(executor: str, root: Path) -> Iterator[str]:
    """The spec's ``executor`` section; for ``kubernetes`` and ``worker-pool``, a SIMULATED
    cluster that lives as long as this context (every controller of the round talks to the
    same one)."""
    mode = _CLUSTER_MODES.get(executor)
    if mode is None:
        yield f"{{kind: {executor}}}"
        return
    from kubetune.testing.k8s_emulator import KubernetesEmulator
    from kubetune.testing.kubelet import SimulatedKubelet

    root.mkdir(parents=True, exist_ok=True)
    with KubernetesEmulator() as emulator, SimulatedKubelet(emulator):
        kubeconfig = root / "kubeconfig"
        kubeconfig.write_text(emulator.kubeconfig())
        # a fixed report port: the pods a killed controller started report to its successor
        yield (
            f"{{kind: kubernetes, mode: {mode}, kubeconfig: {kubeconfig},"
            f" report_host: 127.0.0.1, report_port: {_free_port()}}}"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Experiment:
    """One round's folder: the spec, the trainer, the study, the model repository."""

    def __init__(
        self,
        root: Path,
        executor: str,
        max_trials: int,
        parallel: int,
        executor_yaml: str | None = None,
    ) -> None:
        self.root, self.executor, self.max_trials = root, executor, max_trials
        root.mkdir(parents=True, exist_ok=True)
        (root / "soak_trainer.py").write_text(TRAINER)
        section = executor_yaml or f"{{kind: {executor}}}"
        (root / "spec.yaml").write_text(spec_text(section, max_trials, parallel))
        self.journal = root / "kubetune-runs" / NAME / "study.journal"
        self.repo = root / "model-repo"

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.root / "runs.log", "ab")  # noqa: SIM115 - handed to the child
        log.write(b"\n--- run ---\n")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "kubetune", "run", "spec.yaml", *REPO_FLAG],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()

    def states(self) -> Counter[TrialState]:
        if not self.journal.exists():
            return Counter()
        try:
            study = optuna.load_study(study_name=NAME, storage=journal_storage(self.journal))
        except KeyError:  # not created yet
            return Counter()
        return Counter(t.state for t in study.get_trials(deepcopy=False))


def _wait(process: subprocess.Popen[bytes], condition: Any, timeout: float) -> bool:
    """Poll ``condition`` until it holds (True) or the process exits / time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if condition():
            return True
        time.sleep(0.05)
    return False


def kill_once(exp: Experiment, phase: str, rng: random.Random) -> bool:
    """Start a run and SIGKILL its controller in ``phase``; False if it finished first."""
    before = exp.states()[TrialState.COMPLETE]
    process = exp.start()
    try:
        if phase == "startup":
            reached = _wait(process, lambda: False, rng.uniform(0.2, 2.5)) or process.poll() is None
        elif phase == "search":
            reached = _wait(process, lambda: exp.states()[TrialState.COMPLETE] > before, timeout=60)
            reached = reached and not _wait(process, lambda: False, rng.uniform(0.0, 0.4))
            reached = reached and process.poll() is None
        else:
            reached = _wait(
                process, lambda: exp.states()[TrialState.COMPLETE] >= exp.max_trials, timeout=120
            )
            reached = reached and not _wait(process, lambda: False, rng.uniform(0.0, 2.0))
            reached = reached and process.poll() is None
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return reached or process.returncode == -signal.SIGKILL
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def check_round(exp: Experiment, result: RoundResult) -> None:
    """Count what the kills cost (see the module docstring); record every problem found."""
    study = optuna.load_study(study_name=NAME, storage=journal_storage(exp.journal))
    trials = study.get_trials(deepcopy=False)
    result.trials = len(trials)
    lineages: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        lineages.setdefault(int(trial.user_attrs.get(RETRY_OF, trial.number)), []).append(trial)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    result.completed = len(completed)
    result.deaths_in_a_row = max(
        (int(t.user_attrs.get(CONTROLLER_DEATHS, 0)) for t in trials), default=0
    )
    if result.completed != exp.max_trials:
        result.problems.append(f"{result.completed} trials completed, want {exp.max_trials}")
    for root, chain in lineages.items():
        chain.sort(key=lambda t: t.number)
        done = [t for t in chain if t.state == TrialState.COMPLETE]
        if len(done) > 1:
            result.duplicated += len(done) - 1
            result.problems.append(f"config of trial {root} completed {len(done)} times")
        last = chain[-1]
        # A retried trial has a successor in its chain, so a chain ending in a failure lost its
        # config; except a trial killed before it had params: it is replaced, not retried.
        if last.state == TrialState.FAIL and not done and last.params:
            result.lost += 1
            result.problems.append(
                f"config of trial {root} lost (trial {last.number}, "
                f"retried={last.user_attrs.get(RETRIED)})"
            )
        if last.state in (TrialState.RUNNING, TrialState.WAITING):
            result.stuck += 1
            result.problems.append(f"trial {last.number} left {last.state.name}")
        for trial in done:
            if int(trial.user_attrs.get(ATTEMPT, 1)) != 1:
                result.retries_lost += 1
                result.problems.append(f"trial {trial.number} spent a retry on a controller death")
            if trial.value is None or abs(trial.value - expected_value(trial.params)) > 1e-9:
                result.problems.append(f"trial {trial.number} has value {trial.value}")
    best = max((expected_value(t.params) for t in completed), default=None)
    summary_path = exp.root / "kubetune-runs" / NAME / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary_best = summary.get("best_value")
    if best is None or abs(study.best_value - best) > 1e-9:
        result.wrong_best += 1
        result.problems.append(f"study best {study.best_value} != best completed {best}")
    if summary_best is None or best is None or abs(float(summary_best) - best) > 1e-9:
        result.wrong_best += 1
        result.problems.append(f"summary best {summary_best} != best completed {best}")
    result.bad_models = _check_models(exp, result)


def _check_models(exp: Experiment, result: RoundResult) -> int:
    """Every visible version pulls (hashes checked); production points at one of them."""
    from kubetune.repository import open_repository

    repo = open_repository(str(exp.repo))
    bad = 0
    versions = repo.versions(NAME) if NAME in repo.models() else []
    if not versions:
        result.problems.append("no model version was pushed")
        return 1
    for manifest in versions:
        with tempfile.TemporaryDirectory() as dest:
            try:
                repo.pull(NAME, manifest.version, Path(dest) / "model")
            except Exception as exc:  # any refusal is a bad model here
                bad += 1
                result.problems.append(f"version {manifest.version} does not pull: {exc}")
    production = repo.aliases(NAME).get("production")
    if production not in {m.version for m in versions}:
        bad += 1
        result.problems.append(f"production points at {production}, not a visible version")
    return bad


def run_round(
    root: Path,
    executor: str,
    kills: int,
    rng: random.Random,
    max_trials: int = 40,
    phases: list[str] | None = None,
) -> RoundResult:
    """``kills`` kills at random phases (or at ``phases``, in order), then the check."""
    with executor_section(executor, root) as section:
        return _run_round(root, executor, kills, rng, max_trials, phases, section)


def _run_round(
    root: Path,
    executor: str,
    kills: int,
    rng: random.Random,
    max_trials: int,
    phases: list[str] | None,
    section: str,
) -> RoundResult:
    exp = Experiment(root, executor, max_trials=max_trials, parallel=2, executor_yaml=section)
    result = RoundResult(executor=executor)
    if not phases:
        # the push phase waits for the search to end, so a round's pushes come last
        phases = sorted((rng.choice(PHASES) for _ in range(kills)), key=lambda p: p == "push")
    for i in range(kills):
        phase = phases[i % len(phases)]
        if phase == "search" and exp.states()[TrialState.COMPLETE] >= max_trials:
            phase = "push"  # nothing left to search
        if kill_once(exp, phase, rng):
            result.kills += 1
            result.phases[phase] += 1
            result.running_at_kill += exp.states()[TrialState.RUNNING]
    final = exp.start()
    result.final_returncode = final.wait(timeout=600)
    if result.final_returncode != 0:
        result.problems.append(f"the undisturbed run exited {result.final_returncode}")
    check_round(exp, result)
    return result


def soak(
    executors: list[str],
    kills: int,
    per_round: int,
    seed: int,
    root: Path,
    json_path: Path | None = None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    report: dict[str, Any] = {"seed": seed, "kills_asked": kills, "executors": {}}
    for executor in executors:
        totals: Counter[str] = Counter()
        problems: list[str] = []
        done, round_no = 0, 0
        began = time.monotonic()
        while done < kills:
            round_no += 1
            batch = min(per_round, kills - done)
            result = run_round(root / f"{executor}-{round_no}", executor, batch, rng)
            done += batch
            for key in (
                "kills",
                "running_at_kill",
                "lost",
                "duplicated",
                "stuck",
                "retries_lost",
                "wrong_best",
                "bad_models",
                "completed",
                "trials",
            ):
                totals[key] += getattr(result, key)
            totals.update({f"phase_{k}": v for k, v in result.phases.items()})
            totals["deaths_in_a_row"] = max(totals["deaths_in_a_row"], result.deaths_in_a_row)
            problems += [f"round {round_no}: {p}" for p in result.problems]
            print(
                f"{executor} round {round_no}: {result.kills} kills {dict(result.phases)}, "
                f"{result.running_at_kill} running at a kill, {result.trials} trials for "
                f"{result.completed} completed, {result.deaths_in_a_row} deaths in a row at "
                f"most: {'clean' if result.clean else 'PROBLEMS: ' + '; '.join(result.problems)}",
                flush=True,
            )
            report["executors"][executor] = {
                "rounds": round_no,
                "seconds": round(time.monotonic() - began, 1),
                **totals,
                "problems": problems,
            }
            if json_path is not None:  # after every round: a stopped soak still tells its counts
                json_path.write_text(json.dumps(report, indent=2, default=dict) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="kills per executor")
    parser.add_argument("--per-round", type=int, default=10, help="kills before each check")
    parser.add_argument("--executor", action="append", choices=EXECUTORS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args(argv)
    executors = args.executor or list(EXECUTORS)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kubetune-soak-") as tmp:
        report = soak(executors, args.kills, args.per_round, args.seed, Path(tmp), args.json)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["finished"] = True
    for executor, counts in report["executors"].items():
        print(
            f"{executor}: {counts['kills']} controller kills "
            f"(startup {counts.get('phase_startup', 0)}, search {counts.get('phase_search', 0)}, "
            f"push {counts.get('phase_push', 0)}; {counts['running_at_kill']} trials running "
            f"at a kill): {counts['lost']} lost, {counts['duplicated']} duplicated, "
            f"{counts['stuck']} stuck, {counts['retries_lost']} retries lost "
            f"(at most {counts['deaths_in_a_row']} deaths in a row on one config), "
            f"{counts['wrong_best']} wrong best, {counts['bad_models']} bad models"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=dict) + "\n")
    return 0 if all(not c["problems"] for c in report["executors"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
