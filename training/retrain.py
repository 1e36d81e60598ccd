"""Learn from users' corrections: `python -m training.retrain mnist` (`make retrain`).

Reads top to bottom: the corrections (vision_core.feedback, the store the service writes) ->
a fit and a held-out share -> a replay sample of the original training data -> a Ray Train
fine-tune of the serving checkpoint -> the detector refitted (the corrected images as in-domain,
the "not of its kind" ones as out-of-domain) -> the gate -> a candidate, or a rejection.

The gate: official test accuracy may drop at most `max_test_drop`, and accuracy on the held-out
corrections must rise, both measured here on the parent and the new checkpoint alike. A
checkpoint that passes is written to models/candidates/ with its ONNX export and model card,
and `--propose` declares it as the model's candidate in config/serve.yaml, so re-applying the
config rolls it out (docs/architecture.md#rolling-out-a-new-model). One that fails goes to
models/rejected/ with the reason, and is never deployed. Lines marked `# Ray:` are Ray's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from training import data, evaluate, export, ood, settings
from training.model import (
    CheckpointError,
    Net,
    load_checkpoint,
    probabilities,
    rewrite_metadata,
    save_checkpoint,
)
from training.train import make_optimizer, train_epoch
from vision_core import feedback as fb
from vision_core import serve_config
from vision_core.formats import file_sha256
from vision_core.paths import ROOT, resolve
from vision_core.registry import MODELS

OUT = ROOT / "models"


def corrections(url: str, model: str, holdout_share: float) -> tuple[list, list, list]:
    """(fit, held out, out of domain) records of a model. The held-out share is chosen by each
    image's hash, so a record stays on its side however many records come later."""
    engine = fb.engine_for(url)
    try:
        fb.migrate(engine)
        rows = fb.rows(engine, model)
    finally:
        engine.dispose()
    in_domain = [r for r in rows if r["label"] != fb.OUT_OF_DOMAIN]
    held = [r for r in in_domain if int(r["image_sha256"][:8], 16) / 16**8 < holdout_share]
    return ([r for r in in_domain if r not in held], held,
            [r for r in rows if r["label"] == fb.OUT_OF_DOMAIN])


def arrays(records: list[dict], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.stack([fb.pixels_of(r) for r in records]) if records \
        else np.zeros((0, 28, 28), np.uint8)
    return pixels, np.array([labels.index(r["label"]) for r in records], np.int64)


def replay(model: str, data_dir: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images of the original training split, so the fine-tune does not forget it."""
    split = data.load_split(model, data_dir, train=True)
    pick = torch.randperm(len(split.labels), generator=torch.Generator().manual_seed(seed))[:n]
    return split.images[pick].numpy(), split.labels[pick].numpy()


def retrain_func(cfg: dict) -> None:
    """Runs on every Ray Train worker: a few epochs from the parent's weights."""
    rank = ray.train.get_context().get_world_rank()  # Ray:
    torch.manual_seed(cfg["seed"] + rank)
    torch.set_num_threads(cfg["threads_per_worker"])
    dataset = TensorDataset(torch.from_numpy(cfg["images"]), torch.from_numpy(cfg["labels"]))
    loader = DataLoader(dataset, batch_size=cfg["batch_size"], shuffle=True, drop_last=True)
    loader = ray.train.torch.prepare_data_loader(loader)  # Ray: shards across workers
    parent, _ = load_checkpoint(cfg["parent"])
    model = ray.train.torch.prepare_model(parent.train())  # Ray: DDP when world > 1
    opt, sched = make_optimizer(model, cfg, steps_per_epoch=len(loader))
    for epoch in range(cfg["epochs"]):
        loss, seen = train_epoch(model, loader, opt, sched, cfg)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save(getattr(model, "module", model).state_dict(), Path(tmp) / "model.pt")
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({"epoch": epoch + 1, "train_loss": loss / seen},  # Ray:
                             checkpoint=ckpt)


def fine_tune(cfg: dict) -> dict:
    """The fine-tuned weights (a state dict), from a Ray Train run."""
    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)  # Ray:
    cfg["threads_per_worker"] = max(1, int(ray.available_resources().get("CPU", 1)))
    trainer = ray.train.torch.TorchTrainer(  # Ray:
        retrain_func, train_loop_config=cfg,
        scaling_config=ray.train.ScalingConfig(num_workers=1,
                                               resources_per_worker={"CPU": cfg["threads_per_worker"]}),
        run_config=ray.train.RunConfig(name=f"retrain-{cfg['dataset']}-"
                                            f"{time.strftime('%Y%m%d-%H%M%S')}",
                                       storage_path=cfg["storage_path"]))
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        return torch.load(Path(d) / "model.pt", weights_only=True)


def refit_detector(path: Path, data_dir: str, keep: np.ndarray, decline: np.ndarray) -> None:
    """The detector fitted anew on the new weights, with the corrected images kept (they are of
    the model's kind) and the "not of its kind" ones declined."""
    model, meta = load_checkpoint(path)
    sets = ood.fitting_sets(model, meta, data_dir)
    if len(keep):
        sets["positives"]["users' corrections"] = ood.features(model, meta, keep)
    if len(decline):
        sets["negatives"]["users' out-of-domain corrections"] = ood.features(model, meta, decline)
    fitted = ood.fit_detector(sets)
    rewrite_metadata(path, ood={**(meta.get("ood") or {}), **fitted,
                                "fit_split": "; ".join(sets["positives"]),
                                "negatives": list(sets["negatives"])})


def accuracy(path: Path, pixels: np.ndarray, labels: np.ndarray) -> float | None:
    if not len(labels):
        return None
    model, meta = load_checkpoint(path)
    pred = probabilities(model, meta, pixels).argmax(1).numpy()
    return float((pred == labels).mean())


def gate(parent: Path, new: Path, data_dir: str, held: tuple, max_drop: float) -> dict:
    """The figures, both checkpoints measured alike, and whether the new one may go out."""
    test = {"parent": evaluate.evaluate(parent, data_dir).accuracy,
            "new": evaluate.evaluate(new, data_dir).accuracy}
    holdout = {"parent": accuracy(parent, *held), "new": accuracy(new, *held)}
    reasons = []
    if test["new"] < test["parent"] - max_drop:
        reasons.append(f"official test accuracy fell {test['parent'] - test['new']:.2%} "
                       f"(at most {max_drop:.2%})")
    if holdout["new"] is None or holdout["new"] <= holdout["parent"]:
        reasons.append(f"accuracy on held-out corrections did not rise ({holdout['parent']} "
                       f"-> {holdout['new']})")
    return {"test_accuracy": test, "holdout_accuracy": holdout, "holdout": len(held[1]),
            "passed": not reasons, "reasons": reasons}


def propose(model: str, checkpoint: Path, traffic: float,
            config: Path = serve_config.SERVE_YAML) -> None:
    """Declare the checkpoint as the model's candidate in config/serve.yaml: the Rollout
    deployment's `candidates:` line, edited in place (the file's comments stay)."""
    text = config.read_text()
    rollout = serve_config.app(yaml.safe_load(text))["deployments"]
    (declared,) = [d["user_config"]["candidates"] for d in rollout if d["name"] == "Rollout"]
    shown = checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint
    declared = {**declared, model: {"checkpoint": str(shown), "traffic": traffic}}
    lines = text.splitlines(keepends=True)
    (i,) = [i for i, line in enumerate(lines) if line.lstrip().startswith("candidates:")]
    indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
    flow = yaml.safe_dump(declared, default_flow_style=True, width=1000).strip()
    lines[i] = f"{indent}candidates: {flow}  # proposed by training/retrain.py\n"
    config.write_text("".join(lines))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.retrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=list(MODELS))
    p.add_argument("--checkpoint", help="the parent (default: the registry's, i.e. served)")
    p.add_argument("--database", help="the feedback store's URL (default: config/serve.yaml's)")
    p.add_argument("--data-dir", default="data", help="torchvision data root (default: data/)")
    p.add_argument("--out-dir", default=str(OUT), help="candidates/ and rejected/ go here")
    p.add_argument("--propose", type=float, metavar="SHARE",
                   help="declare a passing checkpoint as the candidate, at this share of traffic")
    p.add_argument("--storage-path", help="Ray Train's run folder (default: train.yaml's)")
    p.add_argument("--config", default=str(settings.CONFIG))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw = yaml.safe_load(Path(args.config).read_text())
    cfg = {**raw["common"], **raw["retrain"], "dataset": args.model}
    parent = resolve(args.checkpoint or MODELS[args.model].checkpoint)
    url = args.database or fb.configured_url(serve_config.app(serve_config.load())["args"]
                                             ["feedback"])
    try:
        _, meta = load_checkpoint(parent)
        data.prepare(args.model, args.data_dir)
        fit, held, outside = corrections(url, args.model, cfg["holdout_share"])
    except (data.DataError, CheckpointError) as err:
        return settings.fail(err)
    if len(fit) < cfg["min_feedback"]:
        return settings.fail(ValueError(f"{len(fit)} corrections of {args.model} to learn from "
                                        f"(at least {cfg['min_feedback']}): nothing to do yet"))
    fit_x, fit_y = arrays(fit, meta["labels"])
    n_replay = max(cfg["replay_min"], cfg["replay_per_feedback"] * len(fit))
    replay_x, replay_y = replay(args.model, args.data_dir, n_replay, cfg["seed"])
    cfg.update(parent=str(parent), augment=(meta.get("train_config") or {}).get("augment") or
               cfg["augment"], storage_path=str(resolve(args.storage_path or cfg["storage_path"])),
               images=np.concatenate([np.repeat(fit_x, cfg["feedback_repeats"], 0), replay_x]),
               labels=np.concatenate([np.repeat(fit_y, cfg["feedback_repeats"], 0), replay_y]))
    t0 = time.perf_counter()
    weights = fine_tune(cfg)
    model = Net(**meta["model_args"])
    model.load_state_dict(weights)
    stage = Path(tempfile.mkdtemp(prefix="retrain-")) / f"{args.model}_cnn.pt"
    ids = [r["id"] for r in fit + held]
    provenance = {"rows": len(fit), "held_out": len(held), "out_of_domain": len(outside),
                  "ids": [min(ids), max(ids)], "replay": n_replay,
                  "sha256": hashlib.sha256("".join(sorted(r["image_sha256"] + r["label"]
                                                          for r in fit)).encode()).hexdigest()}
    save_checkpoint(stage, model, meta["model_args"], args.model,
                    parent_sha256=file_sha256(parent), feedback=provenance,
                    train_config={k: v for k, v in cfg.items() if k not in ("images", "labels")},
                    code_version=settings.git_commit(),
                    train_seconds=round(time.perf_counter() - t0, 1))
    refit_detector(stage, args.data_dir, fit_x,
                   np.stack([fb.pixels_of(r) for r in outside]) if outside else fit_x[:0])
    verdict = gate(parent, stage, args.data_dir, arrays(held, meta["labels"]),
                   cfg["max_test_drop"])
    rewrite_metadata(stage, test_accuracy=verdict["test_accuracy"]["new"], retrain=verdict)
    return finish(args, stage, verdict)


def finish(args: argparse.Namespace, stage: Path, verdict: dict) -> int:
    """A candidate (exported, with its card) or a rejection with the reason."""
    out = Path(args.out_dir)
    if not verdict["passed"]:
        where = out / "rejected" / f"{time.strftime('%Y%m%d-%H%M%S')}-{stage.name}"
        where.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(stage, where)
        where.with_suffix(".json").write_text(json.dumps(verdict, indent=1))
        print(f"rejected: {'; '.join(verdict['reasons'])} -> {where}", file=sys.stderr)
        return 1
    where = out / "candidates" / stage.name
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(stage, where)
    export.export(where)
    evaluate.write_outputs(evaluate.evaluate(where, args.data_dir))
    t, h = verdict["test_accuracy"], verdict["holdout_accuracy"]
    print(f"candidate {where}: test accuracy {t['parent']:.2%} -> {t['new']:.2%}, held-out "
          f"corrections {h['parent']:.2%} -> {h['new']:.2%} ({verdict['holdout']} images)")
    if args.propose is not None:
        propose(args.model, where, args.propose)
        print(f"declared in {serve_config.SERVE_YAML.relative_to(ROOT)}: re-apply the config "
              "(serve deploy config/serve.yaml) to roll it out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
