"""The container image: `make image`, the local stand-in for Ray's base image, the engine that
builds and runs them (docker or podman). Standard library only: it runs before any venv exists."""
