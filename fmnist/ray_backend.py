"""Training on a Ray cluster: a lab of PCs as one pool, behind the same JobManager interface.

    manager = JobManager(backend=RayBackend("10.0.0.5:6379"))   # or make_manager(settings, address)
    job = manager.submit(cfg, owner="tab-1")    # pending until the cluster places it, then running

Each run is a Ray actor that reserves `cpus_per_run` CPUs (or one GPU when the cluster has GPUs)
and runs `fmnist.jobs.run_training` in a thread; the manager polls it without blocking, so events
reach the page as they do from a local worker. Ray's scheduler is the queue. The `fmnist` package
travels with each run (`runtime_env.py_modules`), so a lab PC needs only the Python packages. The
dataset is read from the worker's own disk where it is installed, otherwise from Ray's object
store, where the server puts it once. The trained weights come back to the server, which saves
them with the usual atomic checkpoint code.

Nothing imports `ray` unless this backend is used. Security: a Ray cluster runs any code sent to it.
Bind the head to the lab network, keep Ray's token authentication on, and never expose the
dashboard or the client port publicly (docs/DEPLOY.md, "A lab of PCs").
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .jobs import Job, JobManager, LocalBackend
from .settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
_CONNECTION = threading.Lock()
_USERS = 0  # RayBackends of this process sharing its one Ray connection


def _actor_class(ray: Any) -> Any:
    """The remote actor class (built on first use, so importing this module needs no ray)."""

    class RayRun:
        """One training run on a cluster node: trains in a thread; poll() hands over its events."""

        def __init__(self, cfg: TrainConfig, threads: int, data_box: list, local_data: bool) -> None:
            import torch

            from .data import DatasetError, load_dataset
            from .jobs import run_training

            torch.set_num_threads(threads)
            data = None
            if local_data:
                with contextlib.suppress(DatasetError):
                    data = load_dataset()  # this node's own copy, where it has one
            if data is None:
                data = ray.get(data_box[0])  # from the object store: the server put it there once
            self._events: deque = deque()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=run_training, args=(cfg, self._events.append, self._stop, data), daemon=True
            )
            self._thread.start()

        def poll(self) -> list:
            out = []
            while self._events:
                out.append(self._events.popleft())
            return out

        def stop(self) -> None:
            self._stop.set()

        def where(self) -> tuple[str, int]:
            """(node address, process id) of this run's worker."""
            return ray.util.get_node_ip_address(), os.getpid()

    return ray.remote(RayRun)


class RayBackend:
    """Runs each job as a Ray actor on the cluster at `address` ("host:port")."""

    name = "ray"
    queues_itself = True

    def __init__(self, address: str, cpus_per_run: int | None = None, local_data: bool = True) -> None:
        """
        Args:
            address: the head's "host:port".
            cpus_per_run: CPUs each run reserves ($FMNIST_RAY_CPUS_PER_RUN, default 2).
            local_data: let a node read its own copy of the dataset; False always sends the
                server's copy through the object store (as for a node without the package).
        """
        # Keep token authentication on (Ray 2.60 turns it on for clusters it starts; a driver joining
        # one must send the token too: ~/.ray/auth_token, or $RAY_AUTH_TOKEN / $RAY_AUTH_TOKEN_PATH).
        # Ray reads the mode when it is imported.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        _probe(address)  # first: nothing listening there is the plainest error
        if os.environ["RAY_AUTH_MODE"].lower() == "token" and token_source() is None:
            raise ConnectionError(NO_TOKEN)  # before importing ray: no minute of retries, one line
        import ray  # the only place the project imports ray

        self.ray = ray
        self.address = address
        self.cpus_per_run = cpus_per_run or Settings.from_env().ray_cpus_per_run
        self.local_data = local_data
        with _CONNECTION:
            self._connect(ray, address)
        self._actor = _actor_class(ray)
        self._data_ref: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def _connect(ray: Any, address: str) -> None:
        """One connection per process, shared by every RayBackend in it (counted, see close())."""
        global _USERS
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    runtime_env={"py_modules": [str(PACKAGE_DIR)]},
                    log_to_driver=False,
                    logging_level="ERROR",
                )
            except Exception as e:  # ConnectionError, auth errors, ...: one line for the user
                if type(e).__name__ == "ConnectionError":  # something listens (probed), yet Ray could not join it
                    raise ConnectionError(
                        f"the Ray cluster at {address} did not let this machine in: is its token the head's? "
                        "(`ray get-auth-token` on the head prints it; docs/DEPLOY.md, 'A lab of PCs')"
                    ) from None
                raise ConnectionError(
                    f"cannot reach the Ray cluster at {address}: {type(e).__name__}: {_first_line(e)}"
                ) from None
        _USERS += 1

    def _data_box(self) -> list:
        """[ObjectRef of the dataset], put into the object store once (a list: Ray passes it unresolved)."""
        with self._lock:
            if self._data_ref is None:
                from .data import load_dataset

                self._data_ref = self.ray.put(load_dataset())
            return [self._data_ref]

    def _resources(self) -> dict[str, Any]:
        gpus = self.ray.cluster_resources().get("GPU", 0)
        return {"num_cpus": self.cpus_per_run, "num_gpus": 1 if gpus else 0}

    def start(self, job: Job, threads: int) -> None:
        actor = self._actor.options(name=None, max_restarts=0, **self._resources()).remote(
            job.config, threads, self._data_box(), self.local_data
        )
        job._proc = actor
        job._events = actor.poll.remote()  # the outstanding poll; answered once the actor is placed
        job.placed = False

    def poll(self, job: Job) -> tuple[list[Any], str | None]:
        ray = self.ray
        ready, _ = ray.wait([job._events], timeout=0)
        if not ready:
            return [], None
        try:
            msgs = ray.get(job._events)
        except ray.exceptions.RayActorError as e:
            return [], f"the run's worker on the cluster died ({_first_line(e)})"
        except ray.exceptions.RayError as e:
            return [], f"lost contact with the cluster ({type(e).__name__}: {_first_line(e)})"
        job.placed = True
        job._events = job._proc.poll.remote()
        return msgs, None

    def request_stop(self, job: Job) -> None:
        job._proc.stop.remote()

    def alive(self, job: Job) -> bool:
        return job._proc is not None

    def kill(self, job: Job) -> None:
        if job._proc is not None:
            self.ray.kill(job._proc, no_restart=True)

    def release(self, job: Job) -> None:
        if job._proc is not None:
            self.ray.kill(job._proc, no_restart=True)  # the actor's CPUs go back to the pool
        job._proc = job._events = None

    def close(self) -> None:
        """Disconnect from the cluster when the last backend of this process closes."""
        global _USERS
        with _CONNECTION:
            _USERS -= 1
            if _USERS == 0:
                self.ray.shutdown()


NO_TOKEN = (
    "Ray token authentication is on, but this machine has no token. On the head, run "
    "`ray get-auth-token --generate` before `RAY_AUTH_MODE=token ray start --head ...`, then give this "
    "machine that token: RAY_AUTH_TOKEN=<token>, or the file ~/.ray/auth_token (docs/DEPLOY.md, 'A lab of PCs')."
)


def token_source(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str | None:
    """Where Ray will find this machine's authentication token, as Ray looks: None when nowhere.

    $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (a file must be non-empty).
    """
    env = os.environ if environ is None else environ
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    path = (
        Path(env["RAY_AUTH_TOKEN_PATH"])
        if env.get("RAY_AUTH_TOKEN_PATH")
        else (home or Path.home()) / ".ray" / "auth_token"
    )
    try:
        return str(path) if path.read_text().strip() else None
    except OSError:
        return None


def _probe(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast when nothing listens at `address`: Ray itself retries for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address}: nothing answers there ({type(e).__name__}). "
            "Is the head started (ray start --head), and is the address host:port?"
        ) from None


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:160]


def make_manager(
    settings: Settings, address: str | None, *, fall_back: bool = False, heartbeat_s: float | None = 180.0
) -> tuple[JobManager, str | None]:
    """The one way to build a job manager: runs on the Ray cluster at `address`, or in local worker
    processes when there is none. Returns (manager, note).

    Args:
        settings: the server's settings (slots, grace period, CPUs per Ray run, the data folder).
        address: "host:port" of the Ray head (the app passes $FMNIST_RAY_ADDRESS, the CLI its --ray).
        fall_back: when the cluster cannot be reached, train here and say why in `note` (the app: the
            class still trains); otherwise raise ConnectionError with a one-line reason (the CLI).
        heartbeat_s: JobManager's (None: no heartbeat, for the CLI).
    """
    note = None
    if address:
        try:
            backend: Any = RayBackend(address, cpus_per_run=settings.ray_cpus_per_run)
        except ConnectionError as e:
            if not fall_back:
                raise
            backend, note = LocalBackend(settings.data_dir), f"{e} Runs train on this server instead."
    else:
        backend = LocalBackend(settings.data_dir)
    return JobManager(backend=backend, settings=settings, heartbeat_s=heartbeat_s), note
