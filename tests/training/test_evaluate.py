"""training/evaluate.py on synthetic data: the Python API, the files written, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training import data, evaluate, ood_eval, realistic
from training.model import load_checkpoint, normalise
from training.synthetic import write_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_scores_match_a_direct_computation(synthetic: tuple[Path, dict],
                                           tiny_checkpoint: Path) -> None:
    root, expected = synthetic
    ev = evaluate.evaluate(tiny_checkpoint, root, expected=expected, batch_size=16)
    model, meta = load_checkpoint(tiny_checkpoint)
    test = data.load_split("mnist", root, train=False)
    with torch.inference_mode():
        pred = model(normalise(test.images, meta["mean"], meta["std"])).argmax(1)
    assert ev.n == 40 and ev.confusion.shape == (10, 10)
    assert ev.accuracy == pytest.approx((pred == test.labels).float().mean().item())
    for k, acc in enumerate(ev.per_class().values()):
        mask = test.labels == k
        want = (pred[mask] == k).float().mean().item() if mask.any() else None
        assert acc == pytest.approx(want)
    assert ev.num_params == sum(p.numel() for p in model.parameters())


def test_writes_figures_and_model_card(synthetic: tuple[Path, dict], tiny_checkpoint: Path,
                                       tmp_path: Path) -> None:
    root, expected = synthetic
    ev = evaluate.evaluate(tiny_checkpoint, root, expected=expected)
    files = evaluate.write_outputs(ev, tmp_path / "out")
    assert files["confusion"] == tmp_path / "out" / "tiny_confusion.png"
    assert files["training"] == tmp_path / "out" / "tiny_training.png"
    for png in (files["confusion"], files["training"]):
        assert png.read_bytes().startswith(PNG_MAGIC)
    card = files["card"].read_text()
    assert "(tiny_confusion.png)" in card and "(tiny_training.png)" in card
    assert ev.meta["sha256"] in card


def test_outputs_go_beside_the_checkpoint_by_default(synthetic: tuple[Path, dict],
                                                     tiny_checkpoint: Path) -> None:
    root, expected = synthetic
    files = evaluate.write_outputs(evaluate.evaluate(tiny_checkpoint, root, expected=expected))
    assert files["card"] == tiny_checkpoint.with_suffix(".md")


def test_cli_json_is_the_last_line(synthetic: tuple[Path, dict], tiny_checkpoint: Path,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    root, expected = synthetic
    monkeypatch.setattr(data, "SHA256", expected)  # the CLI only accepts "official" checksums
    code = evaluate.main([str(tiny_checkpoint), "--data-dir", str(root), "--json", "--ood-n", "0",
                          "--out-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["dataset"] == "mnist" and result["n"] == 40
    assert 0.0 <= result["accuracy"] <= 1.0
    assert list(result["per_class_accuracy"]) == [str(i) for i in range(10)]
    assert result["checkpoint_sha256"] == load_checkpoint(tiny_checkpoint)[1]["sha256"]
    assert Path(result["files"]["card"]).is_file()
    assert "accuracy" in out.splitlines()[1]


def _run_failing(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = evaluate.main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    return captured.err


def test_cli_refuses_unofficial_data(synthetic: tuple[Path, dict], tiny_checkpoint: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = synthetic
    err = _run_failing([str(tiny_checkpoint), "--data-dir", str(root)], capsys)
    assert err.startswith("error: mnist: checksum mismatch")


def test_cli_refuses_a_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    err = _run_failing([str(junk), "--data-dir", str(tmp_path)], capsys)
    assert str(junk) in err


def test_the_card_measures_the_out_of_domain_evaluation_set(tmp_path: Path, tiny_checkpoint: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """training/ood_eval.py in-process, for this checkpoint, beside the served other model."""
    root = tmp_path / "data"
    expected = {**write_dataset(root, "mnist", n_train=64, n_test=40),
                **write_dataset(root, "fmnist", n_train=64, n_test=40)}
    monkeypatch.setattr(data, "SHA256", expected)  # the evaluation set reads the official names
    ev = evaluate.evaluate(tiny_checkpoint, root, ood_n=2)
    found = ev.ood_results
    assert found["n"] == 2 and found["through"] == "in-process"
    assert found["sha256"] == ev.meta["sha256"]  # this file, not the served digit model
    assert set(found["declined"]) == set(ood_eval.kinds())
    assert set(found["kept"]) == {"test", *realistic.MAKERS["mnist"]}
    assert all(0 <= rate <= 1 for rate in found["declined"].values())
