"""vision_core/feedback.py against a real SQLite file and a real PostgreSQL server: the schema is
migrated (twice is a no-op), a record is stored once however often it is sent, and what training
reads is what serving wrote."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pytest
from sqlalchemy import inspect

from vision_core import feedback as fb


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = fb.engine_for(fb.sqlite_url(tmp_path / "feedback.sqlite3"))
    else:
        engine = fb.engine_for(request.getfixturevalue("postgres_url"))
        with engine.begin() as conn:  # each test starts from an empty database
            conn.exec_driver_sql("DROP TABLE IF EXISTS feedback, alembic_version")
    yield engine
    engine.dispose()


def record(seed: int, label: str = "1", predicted: str = "7") -> fb.Record:
    pixels = np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)
    return fb.Record("mnist", "6ce423a01bdf", predicted, label, pixels)


def test_migrate_creates_the_versioned_schema_and_is_idempotent(engine) -> None:
    assert fb.migrate(engine) == "0001"
    assert fb.migrate(engine) == "0001"
    names = set(inspect(engine).get_table_names())
    assert {"feedback", "alembic_version"} <= names


def test_a_record_is_stored_once_and_read_back_as_written(engine) -> None:
    fb.migrate(engine)
    first, created = fb.add(engine, record(1))
    assert created
    assert fb.add(engine, record(1)) == (first, False)  # the same image, model and label
    other_label, created = fb.add(engine, record(1, label="2"))
    assert created and other_label != first
    (row, *_), = [fb.rows(engine, "mnist")]
    assert np.array_equal(fb.pixels_of(row), record(1).pixels)
    assert (row["predicted"], row["label"], row["model_version"]) == ("7", "1", "6ce423a01bdf")
    assert [r["id"] for r in fb.rows(engine, "mnist", up_to=first)] == [first]
    assert fb.rows(engine, "fmnist") == []


def test_accuracy_by_version_counts_right_answers(engine) -> None:
    fb.migrate(engine)
    fb.add(engine, record(1, label="7"))  # the model was right
    fb.add(engine, record(2, label="1"))
    fb.add(engine, record(3, label=fb.OUT_OF_DOMAIN))
    assert fb.accuracy_by_version(engine, "mnist") == {"6ce423a01bdf": (3, 1)}


def test_concurrent_repeats_of_one_record_store_it_once(engine) -> None:
    fb.migrate(engine)
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: fb.add(engine, record(9)), range(16)))
    assert len({i for i, _ in answers}) == 1 and sum(created for _, created in answers) == 1
    assert len(fb.rows(engine, "mnist")) == 1


def test_pixels_must_be_28_by_28(engine) -> None:
    fb.migrate(engine)
    bad = fb.Record("mnist", "v", "1", "2", np.zeros((14, 14), np.uint8))
    with pytest.raises(ValueError, match="28x28"):
        fb.add(engine, bad)
