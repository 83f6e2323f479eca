"""Command line: python -m fmnist {models,data,train,sweep,evaluate,predict,export,ensemble,bench,download}.

Plain text for people; --json prints exactly one JSON object on stdout for scripts.
Bad input of any kind ends with a one-line error on stderr and a non-zero exit, no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import make_ensemble, save_trained
from .calibrate import calibrated_probs
from .checkpoints import (
    CheckpointError,
    load_checkpoint,
    round_to_fp16,
    sanitize_name,
    save_checkpoint,
)
from .config import (
    DEFAULT_PRESET,
    PRESETS,
    ConfigError,
    TrainConfig,
    explain_config,
    make_config,
    option_fields,
    options,
    parse_value,
    trainable_models,
)
from .data import CLASSES, DatasetError, load_dataset
from .evaluate import EvalResult, evaluate_test
from .models import checked_model_size, count_params, get_spec, list_models, param_count
from .runtime import predict_logits
from .settings import Settings, SettingsError
from .snapshot import SnapshotError
from .train import BatchEvent, DoneEvent, EpochEvent, iter_training


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


# ---------------------------------------------------------------- commands


def cmd_models(a: argparse.Namespace) -> int:
    rows = []
    for name in list_models():
        spec = get_spec(name)
        rows.append(
            {
                "name": name,
                "params": param_count(name),
                "reported": spec.reported,
                "description": spec.description,
                "recipe": spec.recipe,
                "source": spec.source,
            }
        )
    if a.json:
        emit_json({"models": rows, "presets": list(PRESETS)})
        return 0
    print(f"{'model':<9} {'params':>10} {'reported':>9}  description")
    for r in rows:
        rep = f"{r['reported']:.1f}%" if r["reported"] else "-"
        print(f"{r['name']:<9} {r['params']:>10,} {rep:>9}  {r['description']}")
    print(f"\npresets: {', '.join(PRESETS)}   (python -m fmnist train --preset NAME)")
    return 0


def _option_overrides(a: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (None: not given, the recipe's value stands), parsed by
    fmnist.config.parse_value: the rules of lesson links and sweeps, and a one-line ConfigError."""
    given = {d.name: getattr(a, d.name) for d in option_fields()}
    return {n: parse_value(options()[n], v) if isinstance(v, str) else v for n, v in given.items()}


def _model_kwargs(text: str, arch: str) -> dict[str, Any]:
    try:
        kwargs = json.loads(text)
        if not isinstance(kwargs, dict):
            raise ValueError("not a JSON object")
        checked_model_size(arch, **kwargs)  # fail now, with the builder's own message, allocating nothing
    except Exception as e:  # any builder error becomes one line
        raise CLIError(f"--model-kwargs {text!r} rejected: {type(e).__name__}: {e}") from None
    return kwargs


def build_config(a: argparse.Namespace) -> tuple[TrainConfig, dict[str, str]]:
    """The run's TrainConfig from --preset or --arch plus the options given, and each value's origin."""
    given = _option_overrides(a)
    if a.dry_run:
        given.update(epochs=1, subset=512)
    cfg, origin = explain_config(a.preset, a.arch, **given)
    if a.model_kwargs:
        given["model_kwargs"] = _model_kwargs(a.model_kwargs, cfg.arch)
        cfg, origin = explain_config(a.preset, a.arch, **given)
    return cfg, origin


def print_config(cfg: TrainConfig, origin: dict[str, str]) -> None:
    flat = cfg.flat()
    for name in ["arch", "model_kwargs", *(d.name for d in option_fields())]:
        print(f"{name:<16} {flat[name]!s:<14} {origin[name]}")


class Progress:
    """Human progress on stderr: a live line per batch on a terminal, a line per epoch always."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    def __call__(self, ev: Any) -> None:
        if self.quiet:
            return
        if isinstance(ev, BatchEvent) and self.tty:
            bar = "#" * int(ev.progress * 30)
            print(
                f"\r[{bar:<30}] epoch {ev.epoch} {ev.batch}/{ev.batches} loss {ev.loss:.3f} "
                f"acc {ev.acc:.3f} {ev.images_per_s:,.0f} img/s ETA {ev.eta:.0f}s ",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif isinstance(ev, EpochEvent):
            star = " *" if ev.is_best else ""
            val = (
                "no validation split" if math.isnan(ev.val_acc) else f"val loss {ev.val_loss:.4f} acc {ev.val_acc:.4f}"
            )
            print(
                f"\repoch {ev.epoch:>3}/{ev.epochs}  train loss {ev.train_loss:.4f} acc {ev.train_acc:.4f}  "
                f"{val}  lr {ev.lr:.2e}  "
                f"{ev.images_per_s:,.0f} img/s  {ev.elapsed:.1f}s{star}",
                file=sys.stderr,
                flush=True,
            )


def _finite(x: float) -> float | None:
    """None for NaN (no validation split): JSON has no NaN."""
    return None if math.isnan(x) else x


def default_out(settings: Settings, base: str) -> Path:
    """A new file in the checkpoint folder ($FMNIST_CHECKPOINT_DIR, as the app lists it)."""
    return settings.checkpoint_dir / f"{base}-{time.strftime('%Y%m%d-%H%M%S')}.safetensors"


@contextlib.contextmanager
def training_events(
    cfg: TrainConfig, data: Any, settings: Settings, ray_address: str | None, quiet: bool, snapshot: str | None = None
) -> Iterator[Iterator[Any]]:
    """The run's events: trained here, or on the Ray cluster at `ray_address` (weights come back here)."""
    if not ray_address:
        try:
            yield iter_training(cfg, data, snapshot=snapshot)
        except SnapshotError as e:
            raise CLIError(str(e)) from None
        except KeyboardInterrupt:
            kept = snapshot and Path(snapshot).exists()
            said = f"{snapshot} holds the last whole epoch; the same command continues" if kept else "nothing was saved"
            raise CLIError(f"interrupted: {said}") from None
        return
    from .jobs import JobFailed, follow

    manager = make_manager(settings, ray_address)
    job = manager.submit(cfg, label=f"{cfg.arch}-cli")
    if not quiet:
        print(f"submitted to the Ray cluster at {ray_address}; pending until it has room", file=sys.stderr)
    try:
        yield follow(job)
    except JobFailed as e:
        raise CLIError(f"the run failed on the cluster: {e}") from None
    except KeyboardInterrupt:
        raise CLIError("interrupted: the run was stopped on the cluster, nothing was saved") from None
    finally:
        manager.shutdown()


def make_manager(settings: Settings, ray_address: str | None) -> Any:
    """A JobManager here (local worker processes), or on the Ray cluster at `ray_address`."""
    from .ray_backend import make_manager as build  # imports ray only for an address

    try:
        return build(settings, ray_address, heartbeat_s=None)[0]
    except ConnectionError as e:
        raise CLIError(str(e)) from None


def cmd_sweep(a: argparse.Namespace) -> int:
    from .sweep import SweepError, SweepSpec, check_spec, parse_param, run_sweep

    fixed = {k: v for k, v in _option_overrides(a).items() if v is not None}
    if a.arch:
        fixed["arch"] = a.arch
    if a.arch and a.preset:
        raise CLIError("give an architecture or a preset, not both")
    if a.model_kwargs:
        fixed["model_kwargs"] = _model_kwargs(a.model_kwargs, a.arch or make_config(preset=a.preset).arch)
    try:
        params = [parse_param(t) for t in a.param or []]
        spec = SweepSpec(
            study="",
            params=params,
            trials=a.trials,
            fixed=fixed,
            preset=a.preset,
            resume=a.resume,
            pruner=a.pruner,
            seed=a.sampler_seed,
        )
        spec.study = a.study or f"{spec.arch}-sweep"
        spec.storage = a.storage or a.settings.sweep_storage
        spec.save_to = a.out or a.settings.checkpoint_dir / f"sweep-{sanitize_name(spec.study)}.safetensors"
        check_spec(spec)
    except SweepError as e:
        raise CLIError(str(e)) from None
    data = load_dataset(a.data_dir)  # a missing dataset stops here, with instructions

    def line(t: dict) -> None:
        if not a.json:
            value = "-" if t["value"] is None else f"{t['value']:.4f}"
            print(f"trial {t['number']:>3}  {t['state']:<8} {value:>7}  after {t['epochs']} epoch(s)  {t['params']}")

    manager = make_manager(a.settings, a.ray)
    try:
        result = run_sweep(spec, manager, on_trial=line, data=data)
    except SweepError as e:
        raise CLIError(str(e)) from None
    except KeyboardInterrupt:
        raise CLIError("interrupted: the finished trials are in the study; --resume continues it") from None
    finally:
        manager.shutdown()
    if a.json:
        emit_json(result)
    else:
        best = result["best"]
        print(f"\nstudy {result['study']!r}: {len(result['trials'])} trials in {spec.storage}")
        if best:
            print(f"best: trial {best['number']}, validation accuracy {best['value']:.4f}, {best['params']}")
            print(f"its model: {result['checkpoint']}")
    return 0 if result["best"] else 1


def cmd_train(a: argparse.Namespace) -> int:
    cfg, origin = build_config(a)
    if a.show_config:
        emit_json({"config": cfg.to_dict(), "origin": origin}) if a.json else print_config(cfg, origin)
        return 0
    out = Path(a.out) if a.out else default_out(a.settings, a.preset or a.arch or "quick")
    if out.suffix != ".safetensors":
        out = out.with_name(out.name + ".safetensors")
    if out.exists() and not a.force and not a.dry_run:
        raise CLIError(f"{out} exists; pass --force to replace it, or choose another --out")
    if a.snapshot and (a.ray or a.dry_run):
        other = "--ray" if a.ray else "--dry-run"
        raise CLIError(f"--snapshot is for a run on this machine; it does not go with {other}")
    data = load_dataset(a.data_dir)
    wall0 = time.perf_counter()
    progress = Progress(a.json)
    result = None
    with training_events(cfg, data, a.settings, a.ray, progress.quiet, a.snapshot) as events:
        for ev in events:
            progress(ev)
            if isinstance(ev, DoneEvent):
                result = ev.result
    wall = time.perf_counter() - wall0
    assert result is not None
    summary: dict[str, Any] = {
        "status": result.status,
        "message": result.message,
        "arch": cfg.arch,
        "preset": a.preset,
        "train_time_s": round(result.train_time_s, 2),
        "wall_time_s": round(wall, 2),
        "best_epoch": result.best_epoch,
        "val_accuracy": _finite(result.val_acc),
        "params": result.params,
        "device": result.device,
        "precision": result.precision,
    }
    if result.model is None:  # diverged: nothing is saved
        summary["checkpoint"] = None
        emit_json(summary) if a.json else err(result.message)
        return 3
    if a.dry_run:
        full, path = evaluate_test(round_to_fp16(result.model), tta_flip=cfg.tta_flip, data=data), None
    else:
        path, full = save_trained(result, out, a.command_line, data=data, preset=a.preset, wall_time_s=round(wall, 2))
    summary.update(
        test_accuracy=full.accuracy, test_loss=full.loss, macro_f1=full.macro_f1, checkpoint=str(path) if path else None
    )
    if a.json:
        emit_json(summary)
    else:
        print(f"\n{result.message}")
        print(
            f"test accuracy {full.accuracy:.2%}  loss {full.loss:.4f}  macro-F1 {full.macro_f1:.4f}  "
            f"({result.params:,} params, {result.device}/{result.precision})"
        )
        print(f"training time {result.train_time_s:.1f}s, wall time {wall:.1f}s")
        print(f"saved {summary['checkpoint']}" if summary["checkpoint"] else "dry run: nothing saved")
    return 0


def print_report(res: EvalResult) -> None:
    print(f"accuracy {res.accuracy:.2%}   loss {res.loss:.4f}   macro-F1 {res.macro_f1:.4f}   ECE {res.ece:.4f}")
    print(f"\n{'class':<12} {'acc':>6} {'prec':>6} {'rec':>6} {'f1':>6} {'support':>8}")
    for r in res.per_class_rows():
        print(
            f"{r['class']:<12} {r['accuracy']:>6.3f} {r['precision']:>6.3f} {r['recall']:>6.3f} "
            f"{r['f1']:>6.3f} {r['support']:>8}"
        )
    short = [c.split("/")[0][:7] for c in CLASSES]
    print("\nconfusion matrix (rows = true, columns = predicted)")
    print(" " * 8 + "".join(f"{s:>8}" for s in short))
    for s, row in zip(short, res.confusion):
        print(f"{s:<8}" + "".join(f"{v:>8}" for v in row))


def cmd_evaluate(a: argparse.Namespace) -> int:
    ckpt = load_checkpoint(a.checkpoint)
    data = load_dataset(a.data_dir)
    t0 = time.perf_counter()
    full = evaluate_test(ckpt.model, tta_flip=ckpt.tta_flip, limit=a.limit, data=data)
    dt = time.perf_counter() - t0
    t = ckpt.temperature
    ece_cal = full.calibrated_ece(t) if t else None
    if a.json:
        emit_json(
            {
                "checkpoint": str(a.checkpoint),
                "arch": ckpt.card["arch"],
                "params": count_params(ckpt.model),
                "seconds": round(dt, 3),
                "tta_flip": ckpt.tta_flip,
                **full.card_metrics(),
                "temperature": t,
                "ece_calibrated": ece_cal,
            }
        )
        return 0
    print(f"{a.checkpoint}: {ckpt.card['arch']}, {count_params(ckpt.model):,} params, {len(full.labels)} test images")
    print_report(full)
    if t:
        print(f"temperature {t:.3f} (fitted on the validation split): ECE {full.ece:.4f} -> {ece_cal:.4f} calibrated")
    print(f"\nevaluated in {dt:.2f}s")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from .preprocess import ImageError, preprocess  # scipy and scikit-image: only predict needs them

    ckpt = load_checkpoint(a.checkpoint)
    results, failed = [], 0
    for path in a.images:
        try:
            pre = preprocess(path)
        except ImageError as e:
            err(f"{path}: {e}")
            failed += 1
            continue
        logits = predict_logits(ckpt.model, pre.tensor(), tta_flip=ckpt.tta_flip)
        if not bool(logits.isfinite().all()):  # NaN is not JSON, and not an answer
            err(f"{path}: the model produced non-finite scores for this image")
            failed += 1
            continue
        probs = calibrated_probs(logits, ckpt.temperature)[0]  # calibrated where the card says how
        order = np.argsort(-probs)
        results.append(
            {
                "image": str(path),
                "class": CLASSES[order[0]],
                "index": int(order[0]),
                "confidence": float(probs[order[0]]),
                "probabilities": {CLASSES[i]: float(probs[i]) for i in range(len(CLASSES))},
                "temperature": ckpt.temperature,
                "preprocessing": [s for s, _ in pre.steps],
                "notes": pre.notes,
                "inverted": pre.inverted,
            }
        )
        if not a.json:
            top = ", ".join(f"{CLASSES[i]} {probs[i]:.1%}" for i in order[: a.top])
            print(f"{path}: {CLASSES[order[0]]} ({probs[order[0]]:.1%})   top-{a.top}: {top}")
            for n in pre.notes:
                print(f"    note: {n}")
    if a.json:
        emit_json({"checkpoint": str(a.checkpoint), "predictions": results, "failed": failed})
    return 1 if failed else 0


def cmd_export(a: argparse.Namespace) -> int:
    from .export import ExportError, export_onnx

    ckpt = load_checkpoint(a.checkpoint)
    out = Path(a.out)
    if out.with_suffix(".onnx").exists() and not a.force:
        raise CLIError(f"{out.with_suffix('.onnx')} exists; pass --force to replace it")
    try:
        path = export_onnx(ckpt, out)
    except ExportError as e:
        raise CLIError(str(e)) from None
    summary = {
        "checkpoint": str(a.checkpoint),
        "onnx": str(path),
        "bytes": path.stat().st_size,
        "input": "pixels float32 (N, 1, 28, 28) in [0, 1]",
        "output": "logits (N, 10)",
        "temperature": ckpt.temperature,
    }
    emit_json(summary) if a.json else print(f"wrote {path} ({summary['bytes']:,} bytes): {summary['input']} -> logits")
    return 0


def cmd_ensemble(a: argparse.Namespace) -> int:
    out = Path(a.out if a.out.endswith(".safetensors") else a.out + ".safetensors")
    if out.exists() and not a.force:
        raise CLIError(f"{out} exists; pass --force to replace it, or choose another --out")
    members = [load_checkpoint(p) for p in a.checkpoints]
    ens, full = make_ensemble(members, a.vote, a.command_line, data=load_dataset(a.data_dir))
    path = save_checkpoint(ens.model, ens.card, out, linked=[Path(p) for p in a.checkpoints] if a.link else None)
    if a.json:
        emit_json({"checkpoint": str(path), "test_accuracy": full.accuracy, "members": ens.card["members"]})
    else:
        print(f"{a.vote} vote of {len(members)} models: test accuracy {full.accuracy:.2%}; saved {path}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from . import bench as bench_mod  # the bench's DataLoader and PIL: only bench needs them

    res = bench_mod.run(
        arch=a.arch, batch_size=a.batch_size, batches=a.batches, rounds=a.rounds, data=load_dataset(a.data_dir)
    )
    if a.json:
        emit_json(res)
    else:
        bench_mod.print_report(res)
    return 0


def cmd_download(a: argparse.Namespace) -> int:
    from .data import download

    path = download(a.dest)
    ds = load_dataset(path)  # parsed and verified, not just fetched
    emit_json({"root": str(path), "verified": ds.verified}) if a.json else print(
        f"Fashion-MNIST ready in {path} (verified: {ds.verified})"
    )
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    ds = load_dataset(a.data_dir)
    info = {
        "root": str(ds.root),
        "train": len(ds.train_labels),
        "test": len(ds.test_labels),
        "checksum": ds.checksum,
        "verified": ds.verified,
    }
    emit_json(info) if a.json else print("\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0


# ---------------------------------------------------------------- parser


def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def add_option_flags(p: argparse.ArgumentParser) -> None:
    """One --flag per training option, derived from fmnist.config (help, choices, type)."""
    default_cfg, _ = explain_config()
    defaults = default_cfg.flat()
    for d in option_fields():
        flag = "--" + d.name.replace("_", "-")
        shown = defaults[d.name]
        help = f"{d.opt.help} ({DEFAULT_PRESET}: {'off' if shown is None else shown})".replace("%", "%%")
        if d.kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:  # the text is parsed and checked by _option_overrides
            metavar = "{" + ",".join(d.opt.choices) + "}" if d.opt.choices else "N"
            p.add_argument(flag, default=None, metavar=metavar, help=help)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fmnist", description="Fashion-MNIST Studio command line.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        sp.add_argument("--data-dir", help="folder with the four .gz files (default: auto-discover)")
        sp.set_defaults(fn=fn)
        return sp

    add("models", cmd_models, "list the model zoo")
    add("data", cmd_data, "show where the dataset was found and whether it verifies")
    _train_parser(add("train", cmd_train, "train a zoo model or preset and save a checkpoint"))
    _sweep_parser(add("sweep", cmd_sweep, "search hyperparameters with Optuna; every trial is a training run"))
    _checkpoint_parsers(add)
    b = add("bench", cmd_bench, "throughput of this loop vs a per-sample DataLoader loop, eval and predict latency")
    b.add_argument("--arch", default="cnn2")
    b.add_argument("--batch-size", type=positive_int, default=128)
    b.add_argument("--batches", type=positive_int, default=40, help="batches per timed round")
    b.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds per side")

    d = add(
        "download", cmd_download, "download the dataset (checksummed) into $FMNIST_DATA_DIR or ./data; needs internet"
    )
    d.add_argument("--dest", default=None, help="folder for the four files (default: $FMNIST_DATA_DIR, else ./data)")
    return p


def _train_parser(t: argparse.ArgumentParser) -> None:
    t.epilog = (
        "Each option's default comes from the recipe: --preset NAME, or --arch NAME (that model's public "
        f"recipe), or else the '{DEFAULT_PRESET}' preset; the values shown are the '{DEFAULT_PRESET}' preset's. "
        "--show-config prints the resolved options and where each came from."
    )
    t.add_argument("--arch", help=f"train this architecture with its public recipe: {', '.join(trainable_models())}")
    t.add_argument("--preset", help=f"recipe preset: {', '.join(PRESETS)} (default: {DEFAULT_PRESET})")
    t.add_argument("--model-kwargs", help="architecture options as JSON, e.g. '{\"kernel_size\": 5}'")
    add_option_flags(t)
    t.add_argument("--out", help="checkpoint path (default: checkpoints/<preset>-<time>.safetensors)")
    t.add_argument("--force", action="store_true", help="replace an existing --out file")
    t.add_argument("--dry-run", action="store_true", help="1 epoch on 512 images, save nothing (smoke test)")
    t.add_argument(
        "--snapshot",
        metavar="FILE",
        help="write the run's whole state to FILE after every epoch; if FILE exists, continue after its last "
        "epoch (same options and data only), so a long run can be stopped and resumed",
    )
    t.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="train on the Ray cluster at ADDRESS (host:port) and save here (docs/DEPLOY.md: A lab of PCs)",
    )
    t.add_argument(
        "--show-config", action="store_true", help="print the resolved options and their origin; train nothing"
    )


def _sweep_parser(sw: argparse.ArgumentParser) -> None:
    sw.epilog = (
        "Every training option fixes that setting for all trials; --param searches one. Examples: "
        "--param lr=1e-4:1e-1:log  --param batch_size=64,128,256  --param optimizer=adam,sgd. "
        "The study is stored (SQLite under runs/ unless --storage), so --resume adds trials to it."
    )
    sw.add_argument("--arch", help="the architecture to tune (its public recipe is the base)")
    sw.add_argument("--preset", help=f"base recipe preset: {', '.join(PRESETS)}")
    sw.add_argument("--model-kwargs", help="architecture options as JSON")
    sw.add_argument("--param", action="append", metavar="NAME=LOW:HIGH[:log]|NAME=A,B,C", help="search this option")
    sw.add_argument("--trials", type=positive_int, default=12, help="trials to run (default 12)")
    sw.add_argument("--study", help="study name (default: ARCH-sweep)")
    sw.add_argument(
        "--storage", help="Optuna storage URL (default: sqlite under runs/; PostgreSQL for several servers)"
    )
    sw.add_argument("--resume", action="store_true", help="add trials to an existing study")
    sw.add_argument("--pruner", choices=["median", "halving"], default="median", help="stop poor trials early")
    sw.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler")
    sw.add_argument("--out", help="the best trial's checkpoint (default: checkpoints/sweep-STUDY.safetensors)")
    sw.add_argument("--ray", metavar="ADDRESS", help="run the trials on the Ray cluster at ADDRESS")
    add_option_flags(sw)


def _checkpoint_parsers(add: Any) -> None:
    """evaluate, predict, export and ensemble: the commands that take saved checkpoints."""
    e = add("evaluate", cmd_evaluate, "test-set metrics, per-class table and confusion matrix of a checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--limit", type=positive_int, help="only the first N test images")

    pr = add("predict", cmd_predict, "classify image files (any size or mode)")
    pr.add_argument("checkpoint")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--top", type=positive_int, default=3)

    ex = add("export", cmd_export, "export a checkpoint to ONNX (normalisation inside, card in the metadata)")
    ex.add_argument("checkpoint")
    ex.add_argument("--out", required=True, help="the .onnx file")
    ex.add_argument("--force", action="store_true", help="replace an existing file")

    en = add("ensemble", cmd_ensemble, "combine saved checkpoints by soft or majority vote")
    en.add_argument("checkpoints", nargs="+")
    en.add_argument("--vote", choices=["soft", "majority"], default="soft")
    en.add_argument("--out", required=True)
    en.add_argument("--force", action="store_true", help="replace an existing --out file")
    en.add_argument(
        "--link",
        action="store_true",
        help="store only the members' names and checksums, not a copy of their weights (the members must "
        "lie in --out's folder; the vote then loads from their files, and refuses to if one has changed)",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parser().parse_args(argv)
    a.command_line = "python -m fmnist " + " ".join(shlex.quote(s) for s in argv)
    try:
        a.settings = Settings.from_env()  # --data-dir wins over $FMNIST_DATA_DIR, for the workers too
        if getattr(a, "data_dir", None):
            a.settings = replace(a.settings, data_dir=Path(a.data_dir))
        return a.fn(a)
    except (CLIError, DatasetError, CheckpointError, ConfigError, SettingsError) as e:
        err(str(e))
    except KeyError as e:  # unknown model names etc. carry their own message
        err(str(e.args[0]) if e.args else repr(e))
    except (ValueError, TypeError, OSError) as e:
        err(f"{type(e).__name__}: {e}")
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    return 2
