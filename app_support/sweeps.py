"""Sweep-page support: a session's sweep runs in a thread of the server; its trials go through the
server's one job manager, so they share the server-wide limit (or the Ray cluster) with every
student's run. A closed tab stops its sweep after the grace period, as it cancels a run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from app_support import keys
from app_support.leases import Lease, forget, register, touch_sweeps
from app_support.state import checkpoint_dir, settings
from app_support.training import job_manager, owner
from fmnist.checkpoints import FolderLimits, sanitize_name
from fmnist.sweep import Param, SweepError, SweepSpec, check_spec, run_sweep, storage_for


@dataclass
class SweepRun:
    spec: SweepSpec
    lease: Lease
    thread: threading.Thread | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def stopped(self) -> bool:
        """Stopped by its user, or by its session ending."""
        return self.lease.is_set()

    def stop(self) -> None:
        self.lease.stop()


def storage() -> str:
    """Where the app's studies live: $FMNIST_SWEEP_STORAGE, else SQLite under runs/."""
    return settings().sweep_storage


def current_sweep() -> SweepRun | None:
    run = st.session_state.get(keys.SWEEP)
    if run is not None:
        touch_sweeps(owner())
    return run


def start_sweep(arch: str, params: list[Param], trials: int, fixed: dict[str, Any], pruner: str) -> SweepRun:
    """Check and start this session's sweep in a server thread (one at a time per session).

    Raises:
        SweepError: the ranges or settings cannot make a sweep.
    """
    live = current_sweep()
    if live is not None and live.active:
        return live
    n = st.session_state.get(keys.SWEEP_COUNT, 0) + 1
    token = owner()
    study = f"{arch}-{token[:6]}-sweep{n}"
    spec = SweepSpec(
        study=study,
        params=params,
        trials=trials,
        fixed={"arch": arch, **fixed},
        storage=storage(),
        pruner=pruner,
        save_to=checkpoint_dir() / f"sweep-{sanitize_name(study)}.safetensors",
        limits=FolderLimits.from_settings(settings()),
    )
    check_spec(spec)
    st.session_state[keys.SWEEP_COUNT] = n
    lease = Lease(settings().orphan_grace_s)
    register(token, lease)
    run = SweepRun(spec, lease)
    manager = job_manager()  # here, in the script thread: the sweep's thread has no Streamlit context

    def body() -> None:
        try:
            run.result = run_sweep(spec, manager, stop=lease)
        except SweepError as e:
            run.error = str(e)
        except Exception as e:  # the page shows it; the server goes on
            run.error = f"{type(e).__name__}: {e}"
        finally:
            forget(token, lease)

    run.thread = threading.Thread(target=body, name=f"fmnist-sweep-{study}", daemon=True)
    run.thread.start()
    st.session_state[keys.SWEEP] = run
    return run


def optuna_figures(study_name: str) -> list[tuple[str, Any]]:
    """(title, plotly figure) of Optuna's own plots for a stored study, those its trials allow."""
    import optuna
    import optuna.visualization as vis

    study = optuna.load_study(study_name=study_name, storage=storage_for(storage()))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    out = []
    if complete:
        out.append(
            (
                "Optimisation history: each trial's validation accuracy, and the best so far",
                vis.plot_optimization_history(study),
            )
        )
    if any(t.intermediate_values for t in trials):
        out.append(
            ("Intermediate values: accuracy per epoch; pruned trials stop early", vis.plot_intermediate_values(study))
        )
    if len(complete) >= 2:
        out.append(("Parallel coordinates: which settings lead to high accuracy", vis.plot_parallel_coordinate(study)))
        if len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
            with contextlib.suppress(RuntimeError, ValueError):  # too few distinct trials to tell
                out.append(("Parameter importances (fANOVA)", vis.plot_param_importances(study)))
    for _, fig in out:
        fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), title=None)
    return out
