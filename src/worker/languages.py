"""Whisper's language codes and names (whisperx's table), and request values mapped onto them."""

from __future__ import annotations

from whisperx.utils import LANGUAGES, TO_LANGUAGE_CODE

LANGUAGE_CODES: tuple[str, ...] = tuple(LANGUAGES)


def normalize_language(value: str) -> str | None:
    """'ru', 'RU', 'Russian' and 'ru-RU' all mean 'ru'; None when Whisper has no such language."""
    text = value.strip().lower().replace("_", "-")
    if text in LANGUAGES:
        return text
    if text in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[text]
    primary = text.split("-", 1)[0]  # BCP-47 region tags: pt-BR, en-US
    return primary if primary in LANGUAGES else None
