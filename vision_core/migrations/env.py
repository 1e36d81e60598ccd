"""Alembic's environment for the feedback store: migrations run on the connection that
vision_core.feedback.migrate() passes in (no alembic.ini, no URL here)."""

from alembic import context

from vision_core.feedback import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
