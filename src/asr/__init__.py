"""Speech recognition: the one VAD pass, language detection, batched decoding with the
temperature fallback, and the Whisper model's loading."""

from .language import NO_SPEECH_LANGUAGE, Language, detect_language
from .segment import Segment, Word
from .transcription import Transcript, Window, asr_options, find_speech, transcribe, vad_params
from .vad import SpeechWindows
from .whisper import Loaded, load_vad, load_whisper

__all__ = ["NO_SPEECH_LANGUAGE", "Language", "Loaded", "Segment", "SpeechWindows", "Transcript",
           "Window", "Word", "asr_options", "detect_language", "find_speech", "load_vad",
           "load_whisper", "transcribe", "vad_params"]
