"""The feedback store: users' corrections of the models' answers, kept in a real database.

Serving writes them (serve_app/feedback.py, one writer) and training reads them
(training/retrain.py), so the table and its migrations live here, in the core both sides stand
on. SQLite is the embedded default, a file at a configured path; PostgreSQL is used when a URL is
configured (what a cluster of several nodes needs). The schema is versioned with Alembic
(vision_core/migrations/): `migrate()` brings any database to the newest version.

A record is one image's correction: the model and the version that answered, the label it gave
and the right one (or OUT_OF_DOMAIN: "not a digit / not a garment"). The image is stored as the
28x28 pixels the model saw, not as the file the user sent, and by the sha256 of those bytes: the
same image, model and correct label is one record, however often it is sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from vision_core.paths import ROOT

OUT_OF_DOMAIN = "out_of_domain"  # the "label" of an image that is not of the model's kind
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SIDE = 28

metadata = MetaData()
# The newest schema, for queries. Changing it means a new migration in migrations/versions/.
feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("model", String(32), nullable=False),
    Column("model_version", String(12), nullable=False),
    Column("predicted", String(64), nullable=False),
    Column("label", String(64), nullable=False),
    Column("image_sha256", String(64), nullable=False),
    Column("pixels", LargeBinary, nullable=False),
    UniqueConstraint("image_sha256", "model", "label", name="uq_feedback_image_model_label"),
)


@dataclass(frozen=True)
class Record:
    model: str
    model_version: str
    predicted: str
    label: str
    pixels: np.ndarray  # 28 x 28 uint8, as the model saw the image

    @property
    def image_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.pixels, np.uint8).tobytes()).hexdigest()

    @property
    def right(self) -> bool:
        return self.predicted == self.label


def sqlite_url(path: str | Path) -> str:
    """A SQLite URL for a file; a relative path is the project's."""
    path = Path(path)
    return f"sqlite:///{path if path.is_absolute() else ROOT / path}"


def configured_url(settings: dict) -> str:
    """The store an app's `feedback` settings name (config/serve.yaml): the URL in the
    variable they name, when set (it may hold a password), else their SQLite file."""
    import os

    return os.environ.get(settings["database_url_env"]) or sqlite_url(settings["sqlite_path"])


def engine_for(url: str) -> Engine:
    """An engine with the settings that make each database durable for this use."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:
            # WAL: readers (training, the tests) never block the writer; FULL: a commit is on
            # disk before the writer answers, so a killed replica loses no answered record.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")

        return engine
    if url.startswith("postgresql://"):  # the driver installed with the project: psycopg 3
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> str:
    """Bring the database to the newest schema version; returns that version."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def add(engine: Engine, record: Record) -> tuple[int, bool]:
    """(id, True) for a new record, (the existing id, False) for one already stored."""
    pixels = np.ascontiguousarray(record.pixels, np.uint8)
    if pixels.shape != (SIDE, SIDE):
        raise ValueError(f"pixels must be {SIDE}x{SIDE}, got {pixels.shape}")
    row = {"model": record.model, "model_version": record.model_version,
           "predicted": record.predicted, "label": record.label,
           "image_sha256": record.image_sha256, "pixels": pixels.tobytes()}
    try:
        with engine.begin() as conn:
            return conn.execute(insert(feedback).values(**row)).inserted_primary_key[0], True
    except IntegrityError:  # the same image, model and label: the stored record answers
        with engine.connect() as conn:
            found = conn.execute(select(feedback.c.id).where(
                feedback.c.image_sha256 == row["image_sha256"],
                feedback.c.model == record.model, feedback.c.label == record.label)).scalar()
        if found is None:  # another constraint failed: not a duplicate
            raise
        return found, False


def rows(engine: Engine, model: str, up_to: int | None = None) -> list[dict]:
    """Every record of a model, oldest first (up to an id, for a reproducible snapshot)."""
    query = select(feedback).where(feedback.c.model == model).order_by(feedback.c.id)
    if up_to is not None:
        query = query.where(feedback.c.id <= up_to)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def pixels_of(row: dict) -> np.ndarray:
    return np.frombuffer(row["pixels"], np.uint8).reshape(SIDE, SIDE)


def accuracy_by_version(engine: Engine, model: str) -> dict[str, tuple[int, int]]:
    """version -> (records, records where the version's label was right), for one model."""
    right = func.sum((feedback.c.predicted == feedback.c.label).cast(Integer))
    query = (select(feedback.c.model_version, func.count(), right)
             .where(feedback.c.model == model).group_by(feedback.c.model_version))
    with engine.connect() as conn:
        return {v: (int(n), int(r or 0)) for v, n, r in conn.execute(query)}
