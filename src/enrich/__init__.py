"""What the transcript is turned into after the speakers: machine translation into any
language, and text embeddings of what was said. Each is a module of its own:
`enrich.translation` and `enrich.text_embeddings`."""

from . import text_embeddings, translation

__all__ = ["text_embeddings", "translation"]
