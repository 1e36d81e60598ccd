"""The small core that serving and training both stand on: numpy, Pillow and PyYAML (SQLAlchemy
and Alembic for the feedback store), no torch, no Ray.

It holds what the two sides must agree on, so that neither imports the other: where the project
lives (`paths`), which models exist (`registry`), the checkpoint and export formats (`formats`),
how an image becomes a model input (`imaging`), the accept rule (`decision`), the loader of the
ONNX exports that replicas serve (`onnx_model`), the one reading of config/serve.yaml that
tools outside the service need (`serve_config`), and the store of users' corrections, which
serving writes and training reads (`feedback`). tests/test_imports.py checks the import graph.
"""
