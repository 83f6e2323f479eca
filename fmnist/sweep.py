"""Hyperparameter sweeps: an Optuna study whose trials run through the job manager.

    spec = SweepSpec(study="lr-cnn2", params=[parse_param("lr=1e-4:1e-1:log")], fixed={"arch": "cnn2"})
    result = run_sweep(spec, JobManager())      # or a JobManager on the Ray backend: the lab's PCs

Every trial is one training run submitted to a `fmnist.jobs.JobManager`, so it runs in a local
worker within the server-wide limit, or on the Ray cluster. Each epoch's validation accuracy is
reported to Optuna, and the pruner (median, or successive halving) stops a poor trial at once.
The study lives in an Optuna storage (SQLite under runs/ by default), so `resume` adds trials to
it. The best trial's model is saved as a checkpoint whose card names the study and the trial.
Optuna is imported only here.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, Described, TrainConfig, check, make_config, option_fields, parse_value
from .data import FashionMNIST
from .jobs import Job, JobManager
from .settings import SWEEP_STORAGE

OBJECTIVE = "validation accuracy"
MAX_TRIALS = 200  # per sweep, for the CLI and the Sweep page alike
# Options a sweep may search; the others (device, log_every, ...) are not hyperparameters.
SEARCHABLE = {d.name for d in option_fields()} - {"device", "log_every", "precision", "time_budget"}


class SweepError(ValueError):
    """A sweep cannot run as asked; the message is one line for the user."""


@dataclass(frozen=True)
class Param:
    """One searched option: a range (low..high, maybe log-scaled) or a list of choices.

    Checked when made, against the option's own range (fmnist.config): `Param("lr", 1e-4, 0.1,
    log=True)`, `Param("batch_size", choices=(32, 64))`. Raises SweepError, one line.
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        d = _described(self.name)
        object.__setattr__(self, "choices", tuple(dict.fromkeys(self.choices)))
        if self.choices:
            if self.low is not None or self.high is not None:
                raise SweepError(f"{self.name}: give a range or choices, not both")
            values = self.choices
        else:
            if self.low is None or self.high is None:
                raise SweepError(f"{self.name}: no choices given")
            if d.kind not in (int, float):
                raise SweepError(f"{self.name} is not a number: list its choices, e.g. {self.name}=A,B")
            if not self.low < self.high:
                raise SweepError(f"{self.name}: the range {self.low:g}:{self.high:g} is empty (LOW must be below HIGH)")
            if self.log and self.low <= 0:
                raise SweepError(f"{self.name}: a log range needs LOW > 0")
            values = (self.low, self.high)
        for v in values:
            if self.choices and v == 0 and d.field.default is None:
                continue  # an optional option's "off" (patience=0,3,5)
            try:
                check(d, v)
            except ConfigError as e:
                raise SweepError(str(e)) from None

    @property
    def kind(self) -> type:
        return _described(self.name).kind

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def text(self) -> str:
        if self.choices:
            return f"{self.name}={','.join(str(c) for c in self.choices)}"
        return f"{self.name}={self.low:g}:{self.high:g}" + (":log" if self.log else "")


def _described(name: str) -> Described:
    for d in option_fields():
        if d.name == name and name in SEARCHABLE:
            return d
    raise SweepError(f"unknown parameter {name!r}; a sweep can search: {', '.join(sorted(SEARCHABLE))}")


def _value(d: Described, text: str) -> Any:
    try:
        return parse_value(d, text)  # the same rules as lesson links and CLI flags
    except ConfigError as e:
        raise SweepError(str(e)) from None


def parse_param(text: str) -> Param:
    """`NAME=LOW:HIGH[:log]` (a range) or `NAME=A,B,C` (choices), checked against the option's own range.

    Raises:
        SweepError: unknown name, empty range, a value out of the option's range, log of a value <= 0.
    """
    name, sep, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not spec.strip():
        raise SweepError(f"--param {text!r}: write NAME=LOW:HIGH[:log] or NAME=A,B,C")
    d = _described(name)
    if ":" in spec:
        parts = spec.split(":")
        log = len(parts) == 3 and parts[2].strip().lower() == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise SweepError(f"--param {text!r}: a range is LOW:HIGH or LOW:HIGH:log")
        if d.kind not in (int, float):
            raise SweepError(f"{name} is not a number: list its choices, e.g. {name}=A,B")
        return Param(name, _value(d, parts[0]), _value(d, parts[1]), log)
    return Param(name, choices=tuple(_value(d, c) for c in spec.split(",") if c.strip()))


@dataclass
class SweepSpec:
    """What to search. `fixed` holds TrainConfig options every trial shares (preset/recipe included)."""

    study: str
    params: list[Param]
    trials: int = 12
    fixed: dict[str, Any] = field(default_factory=dict)  # e.g. {"arch": "cnn2", "epochs": 2, "subset": 5000}
    preset: str | None = None
    storage: str = SWEEP_STORAGE
    resume: bool = False
    pruner: str = "median"  # or "halving"
    seed: int = 0
    save_to: str | os.PathLike | None = None  # the best trial's checkpoint
    limits: Any = None  # fmnist.checkpoints.FolderLimits for that save (the app's shared folder)

    def config(self, values: dict[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: the fixed options plus the trial's `values`."""
        arch = self.fixed.get("arch")
        overrides = {k: v for k, v in self.fixed.items() if k != "arch"}
        base = {"preset": self.preset} if self.preset or not arch else {"recipe": arch}
        try:
            return make_config(**base, **overrides, **values)
        except ConfigError as e:
            raise SweepError(f"a trial's settings are invalid: {e}") from None

    @property
    def arch(self) -> str:
        return self.config({}).arch


def check_spec(spec: SweepSpec) -> None:
    """Refuse a sweep that cannot run, before anything starts."""
    if not spec.params:
        raise SweepError("nothing to search: give at least one --param")
    if not 1 <= spec.trials <= MAX_TRIALS:
        raise SweepError(f"trials must be in [1, {MAX_TRIALS}], got {spec.trials}")
    if spec.pruner not in ("median", "halving"):
        raise SweepError(f"pruner must be median or halving, got {spec.pruner!r}")
    names = [p.name for p in spec.params]
    if len(set(names)) != len(names):
        raise SweepError("a parameter is given twice")
    fixed_searched = set(names) & set(spec.fixed)
    if fixed_searched:
        raise SweepError(f"{', '.join(sorted(fixed_searched))} is both fixed and searched")
    for p in spec.params:  # the corners of every range must make a valid config
        for v in p.choices or (p.low, p.high):
            if not spec.config({p.name: v}).val_fraction:
                raise SweepError(
                    "a sweep compares trials on a validation split, and this one has none: "
                    "set val_fraction (e.g. 0.1); the test set is never used to choose"
                )


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


_STORAGES: dict[str, Any] = {}
_STORAGES_LOCK = threading.Lock()


def storage_for(url: str) -> Any:
    """One Optuna RDBStorage per URL in this process: two created at once race on the schema."""
    optuna = _optuna()
    with _STORAGES_LOCK:
        if url not in _STORAGES:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            try:
                _STORAGES[url] = optuna.storages.RDBStorage(url)
            except Exception as e:  # a bad URL, a missing driver, a server that does not answer
                raise SweepError(
                    f"cannot open the study storage {_redact(url)}: {type(e).__name__}: {_line(e)}"
                ) from None
        return _STORAGES[url]


def open_study(spec: SweepSpec) -> Any:
    """Create the study, or load it with `resume`. Raises SweepError with a clear reason."""
    optuna = _optuna()
    storage = storage_for(spec.storage)
    exists = spec.study in [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if exists and not spec.resume:
        raise SweepError(f"study {spec.study!r} exists; pass --resume to add trials to it, or choose another --study")
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if spec.pruner == "median"
        else optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    )
    sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(10, max(2, spec.trials // 2)))
    study = optuna.create_study(
        study_name=spec.study,
        storage=storage,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    arch = spec.arch
    if exists:
        if study.user_attrs.get("arch") not in (None, arch):
            raise SweepError(f"study {spec.study!r} is a sweep of {study.user_attrs['arch']}, not {arch}")
    else:
        study.set_user_attr("arch", arch)
        study.set_user_attr("objective", OBJECTIVE)
        study.set_user_attr("params", [p.text() for p in spec.params])
    return study


@dataclass
class _Live:
    trial: Any
    job: Job
    reported: int = 0
    pruned: bool = False


def run_sweep(
    spec: SweepSpec,
    manager: JobManager,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
    parallel: int | None = None,
    data: FashionMNIST | None = None,
) -> dict[str, Any]:
    """Run `spec.trials` trials through `manager` and return the summary (see `summary`).

    Args:
        data: the dataset the best model is evaluated on when saved (default: load_dataset()).
        on_trial: called with each ended trial's record (number, params, state, value).
        stop: set it to stop: running trials are stopped and recorded as failed, none is started.
        parallel: trials at once (default: the manager's max_running, at most 4).
    """
    check_spec(spec)
    optuna = _optuna()
    study = open_study(spec)
    parallel = parallel or min(4, manager.max_running)
    started, live = 0, []
    best_value = _best_value(study)
    saved: str | None = None
    while started < spec.trials or live:
        while started < spec.trials and len(live) < parallel and not (stop and stop.is_set()):
            trial = study.ask()
            values = {p.name: p.suggest(trial) for p in spec.params}
            cfg = spec.config(values)
            job = manager.submit(cfg, label=f"{spec.study}-trial{trial.number}")  # no owner: trials run side by side
            live.append(_Live(trial, job))
            started += 1
        if stop and stop.is_set() and not live:
            break
        time.sleep(0.05)
        for lv in list(live):
            snap = lv.job.snapshot()
            for ev in snap.epochs[lv.reported :]:
                lv.trial.report(ev.val_acc, ev.epoch)
                lv.reported += 1
                if not lv.pruned and lv.trial.should_prune():
                    lv.pruned = True
                    lv.job.stop()
            if stop and stop.is_set() and snap.active:
                lv.job.stop()
            if snap.active:
                continue
            live.remove(lv)
            res = lv.job.result
            if lv.pruned:
                study.tell(lv.trial, state=optuna.trial.TrialState.PRUNED)
            elif lv.job.state == "finished" and res is not None and res.status != "diverged":
                study.tell(lv.trial, res.val_acc)
                if spec.save_to and (best_value is None or res.val_acc > best_value):
                    best_value = res.val_acc
                    saved = _save_best(spec, study, lv.trial, res, data) or saved
            else:
                why = (res.message if res is not None else None) or lv.job.error or lv.job.state
                lv.trial.set_user_attr("error", why)
                study.tell(lv.trial, state=optuna.trial.TrialState.FAIL)
            if on_trial:
                on_trial(_record(study.get_trials(deepcopy=False)[lv.trial.number]))
    return summary(study, saved or (str(spec.save_to) if spec.save_to and Path(spec.save_to).exists() else None))


def _best_value(study: Any) -> float | None:
    try:
        return study.best_value
    except ValueError:  # no completed trial yet
        return None


def _save_best(spec: SweepSpec, study: Any, trial: Any, result: Any, data: FashionMNIST | None) -> str | None:
    """Save the new best trial's model; None (and a note on the study) when the folder is full."""
    from .artifacts import save_trained
    from .checkpoints import FolderFull

    extra = {
        "sweep": {
            "study": spec.study,
            "trial": trial.number,
            "params": trial.params,
            "objective": OBJECTIVE,
            "storage": _redact(spec.storage),
        },
    }
    try:
        path, _ = save_trained(
            result, spec.save_to, f"sweep {spec.study} trial {trial.number}", limits=spec.limits, data=data, **extra
        )
    except FolderFull as e:
        study.set_user_attr("save_error", str(e))
        return None
    study.set_user_attr("best_checkpoint", str(path))
    return str(path)


def _record(t: Any) -> dict[str, Any]:
    value = None if t.value is None or not math.isfinite(t.value) else t.value
    return {
        "number": t.number,
        "params": t.params,
        "state": t.state.name.lower(),
        "value": value,
        "epochs": len(t.intermediate_values),
        "error": t.user_attrs.get("error"),
        "intermediate": {int(k): v for k, v in sorted(t.intermediate_values.items())},
    }


def summary(study: Any, checkpoint: str | None = None) -> dict[str, Any]:
    """{study, arch, trials: [{number, params, state, value}], best: {...} | None, checkpoint}."""
    trials = [_record(t) for t in study.get_trials(deepcopy=False)]
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    best = max(done, key=lambda t: t["value"]) if done else None
    return {
        "study": study.study_name,
        "arch": study.user_attrs.get("arch"),
        "objective": OBJECTIVE,
        "trials": trials,
        "best": best,
        "checkpoint": checkpoint or study.user_attrs.get("best_checkpoint"),
        "save_error": study.user_attrs.get("save_error"),
    }


def load_summary(study_name: str, storage: str = SWEEP_STORAGE) -> dict[str, Any]:
    """The summary of a stored study (for the app's live view and `--json`)."""
    optuna = _optuna()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_for(storage))
    except KeyError:
        raise SweepError(f"no study named {study_name!r} in {_redact(storage)}") from None
    return summary(study)


def _redact(url: str) -> str:
    """A storage URL without its password or folders, for messages and cards (they reach web visitors)."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///.../{Path(url.removeprefix('sqlite:///')).name}"
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}:***@{tail}"


def _line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
