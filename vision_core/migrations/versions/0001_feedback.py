"""The feedback table: one user's correction of one answer.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(12), nullable=False),
        sa.Column("predicted", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("pixels", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("image_sha256", "model", "label",
                            name="uq_feedback_image_model_label"),
    )
    op.create_index("ix_feedback_model_version", "feedback", ["model", "model_version"])


def downgrade() -> None:
    op.drop_index("ix_feedback_model_version", "feedback")
    op.drop_table("feedback")
