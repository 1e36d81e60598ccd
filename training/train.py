"""Train the CNN with Ray Train: `python -m training.train mnist|fmnist [--init ckpt] [...]`.

Reads top to bottom like Ray's torch_fashion_mnist_example: data -> model -> train_func -> main.
Lines marked `# Ray:` are the only Ray-specific ones.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import ray
import ray.train
import ray.train.torch
import torch
import torch.nn.functional as F
from ray.experimental.tqdm_ray import tqdm
from torch.utils.data import DataLoader, TensorDataset

from training import data, settings
from training.augment import augment
from training.export import export
from training.model import Net, load_checkpoint, normalise, save_checkpoint
from vision_core.formats import file_sha256
from vision_core.registry import MODELS


def evaluate_split(model, split: data.Split, mean: float, std: float, rank=0, world=1):
    """(summed loss, correct, count) over this worker's shard of a split."""
    model.eval()
    loss = correct = count = 0.0
    with torch.inference_mode():
        for i in range(rank * 1000, len(split.labels), world * 1000):
            x = normalise(split.images[i:i + 1000], mean, std)
            y = split.labels[i:i + 1000]
            out = model(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            count += len(y)
    return loss, correct, count


def _all_sum(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(t)
    return t.tolist()


def make_optimizer(model: torch.nn.Module, cfg: dict, steps_per_epoch: int):
    """AdamW with a one-cycle LR schedule over all epochs: (optimizer, scheduler)."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], epochs=cfg["epochs"],
                                                steps_per_epoch=steps_per_epoch)
    return opt, sched


def train_epoch(model: torch.nn.Module, loader: DataLoader, opt, sched, cfg: dict,
                bar=None) -> tuple[float, int]:
    """One augmented pass over `loader`: (summed loss, images seen).

    Separate from train_func so benchmarks/train_cost.py can time the same step without Ray.
    """
    spec = MODELS[cfg["dataset"]]
    model.train()
    total_loss, seen = 0.0, 0
    for images, labels in loader:
        x = augment(images.float().div_(255).unsqueeze(1), **cfg["augment"])
        x = (x - spec.mean) / spec.std
        loss = F.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
        if bar:
            bar.update(1)
    return total_loss, seen


def splits(cfg: dict) -> tuple[data.Split, data.Split, DataLoader]:
    """(train split, test split, a shuffled loader over the train split): the data of one run."""
    train_split = data.load_split(cfg["dataset"], cfg["data_dir"], train=True)
    test_split = data.load_split(cfg["dataset"], cfg["data_dir"], train=False)
    loader = DataLoader(TensorDataset(train_split.images, train_split.labels),
                        batch_size=cfg["batch_size"], shuffle=True, drop_last=True)
    return train_split, test_split, loader


def train_func(cfg: dict) -> None:
    """Runs on every Ray Train worker."""
    ctx = ray.train.get_context()  # Ray:
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(cfg["seed"] + rank)  # same init (DDP syncs it), different augmentation
    torch.set_num_threads(cfg["threads_per_worker"])
    spec = MODELS[cfg["dataset"]]
    _, test_split, loader = splits(cfg)
    loader = ray.train.torch.prepare_data_loader(loader)  # Ray: shards with a DistributedSampler

    model = Net(**cfg["arch"])
    if cfg["init"]:
        parent, _ = load_checkpoint(cfg["init"])
        model.load_state_dict(parent.state_dict())
    model = ray.train.torch.prepare_model(model)  # Ray: DDP wrapper when world > 1
    opt, sched = make_optimizer(model, cfg, steps_per_epoch=len(loader))
    start, history = 0, []
    resumed = ray.train.get_checkpoint()  # Ray: set when resuming an interrupted run
    if resumed:
        with resumed.as_directory() as d:
            state = torch.load(Path(d) / "state.pt", weights_only=True)
        getattr(model, "module", model).load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, history = state["epoch"] + 1, state["history"]

    for epoch in range(start, cfg["epochs"]):
        if world > 1:
            loader.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{cfg['epochs']}") if rank == 0 \
            else None
        total_loss, seen = train_epoch(model, loader, opt, sched, cfg, bar)
        if bar:
            bar.close()
        elapsed = time.perf_counter() - t0
        t_loss, t_correct, t_count = evaluate_split(model, test_split, spec.mean, spec.std,
                                                    rank, world)
        sums = _all_sum([total_loss, seen, t_loss, t_correct, t_count, elapsed])
        metrics = {"epoch": epoch + 1, "train_loss": sums[0] / sums[1],
                   "test_loss": sums[2] / sums[4], "test_accuracy": sums[3] / sums[4],
                   "images_per_s": sums[1] / (sums[5] / world)}
        history.append(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save({"model": getattr(model, "module", model).state_dict(),
                            "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "epoch": epoch, "history": history}, Path(tmp) / "state.pt")
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)  # Ray: metrics + checkpoint per epoch
        if rank == 0:
            print(f"[{cfg['dataset']}] epoch {metrics['epoch']}/{cfg['epochs']}  "
                  f"train_loss={metrics['train_loss']:.4f}  test_loss={metrics['test_loss']:.4f}  "
                  f"test_acc={metrics['test_accuracy']:.4%}  {metrics['images_per_s']:.0f} img/s",
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    args = settings.parse_args(argv)
    cfg = settings.build(args)
    if not args.smoke_test:
        return train(args, cfg, expected=None)
    from training.synthetic import write_dataset

    # Synthetic IDX files in the real format, verified like the real ones, then deleted. They go
    # under storage_path, which every node must see anyway (Ray Train's checkpoints): a folder in
    # the driver's own /tmp is missing on the other pods of a cluster (found by `make rehearse`).
    Path(cfg["storage_path"]).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smoke-data-", dir=cfg["storage_path"]) as tmp:
        cfg["data_dir"] = tmp
        return train(args, cfg, expected=write_dataset(tmp, cfg["dataset"],
                                                       n_train=cfg["num_images"]))


def train(args, cfg: dict, expected: dict | None) -> int:
    """Verify the data, fit with Ray Train, and write the self-describing checkpoint."""
    try:
        sums = data.prepare(cfg["dataset"], cfg["data_dir"], expected=expected)
    except data.DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Ray: a local instance started on the fly, or the cluster named by RAY_ADDRESS.
    ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True)
    workers = cfg["num_workers"]
    # Split the CPUs free now, not the cluster total: Serve or other jobs may hold some.
    cfg["threads_per_worker"] = max(1, int(ray.available_resources().get("CPU", 1)) // workers)
    prefix = f"{cfg['dataset']}{'-smoke' if args.smoke_test else ''}-"
    # Ray Train resumes a run whose (storage_path, name) already holds checkpoints.
    run_name = _latest_run(cfg["storage_path"], prefix) if args.resume \
        else prefix + time.strftime("%Y%m%d-%H%M%S")
    trainer = ray.train.torch.TorchTrainer(  # Ray:
        train_func, train_loop_config=cfg,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=torch.cuda.is_available(),
            resources_per_worker={"CPU": cfg["threads_per_worker"]}),
        run_config=ray.train.RunConfig(name=run_name, storage_path=cfg["storage_path"]),
    )
    t0 = time.perf_counter()
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "state.pt", weights_only=True)
    model = Net(**cfg["arch"])
    model.load_state_dict(state["model"])
    final = state["history"][-1]
    sha = save_checkpoint(
        cfg["output"], model, cfg["arch"], cfg["dataset"],
        test_accuracy=final["test_accuracy"], history=state["history"], data_sha256=sums,
        train_config={k: v for k, v in cfg.items() if k not in ("arch",)},
        parent_sha256=file_sha256(cfg["init"]) if cfg["init"] else None,
        code_version=settings.git_commit(), train_seconds=round(time.perf_counter() - t0, 1))
    # The export the replicas serve (vision_core.onnx_model), so the checkpoint is servable as is.
    onnx = export(cfg["output"])
    print(f"saved {cfg['output']} and {Path(onnx).name}  "
          f"test_accuracy={final['test_accuracy']:.4%}  sha256={sha[:12]}")
    return 0


def _latest_run(storage_path: str, prefix: str) -> str:
    """The newest run folder of this dataset under storage_path (what --resume continues)."""
    runs = sorted(p.name for p in Path(storage_path).glob(prefix + "*") if p.is_dir())
    if not runs:
        raise SystemExit(f"--resume: no earlier run named {prefix}* in {storage_path}")
    return runs[-1]


if __name__ == "__main__":
    sys.exit(main())
