"""Memory and threads of a server process over many training runs (docs/RELIABILITY.md).

Runs N short jobs one after another through one fmnist.jobs.JobManager, as the app's server
does, keeping every run's model (as each session keeps its own), and prints the server
process's resident memory and thread count after each run, as JSON.
Usage: python scripts/soak_jobs.py [N]   (default 20)
"""

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fmnist.config import TrainConfig
from fmnist.jobs import JobManager
from fmnist.runtime import machine


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(n: int) -> None:
    manager = JobManager(max_running=1)
    cfg = TrainConfig(arch="quickcnn", epochs=1, subset=2000, batch_size=256)
    rows, sessions = [], []
    for i in range(n):
        job = manager.submit(cfg, owner=f"student-{i}")
        job.wait()
        sessions.append(job.result.model)  # each session keeps its unsaved model, as in the app
        rows.append(
            {
                "run": i + 1,
                "state": job.state,
                "rss_mb": round(rss_mb(), 1),
                "threads": threading.active_count(),
                "workers_alive": manager.status()["workers_alive"],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    manager.shutdown()
    print(json.dumps({"machine": machine(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
