"""The bulk client (`whisperx-client`, `python -m client`): many files through a RunPod
endpoint or workers' base URLs, resumable; docs/scale-out.md. Not part of the worker: nothing
under src/ imports it."""

from .cli import main

__all__ = ["main"]
