"""Speech recognition: the one VAD pass, language detection, batched decoding with the
temperature fallback, and the Whisper model's loading."""

from .language import NO_SPEECH_LANGUAGE, Language, detect_language, spoken_language
from .options import AsrOptions, LanguageOptions, Task, VadOptions
from .recognize import Recognized, recognize
from .segment import Segment, Word
from .transcription import OnSegments, Transcript, Window, find_speech, transcribe
from .vad import SpeechWindows, VadParams
from .whisper import Loaded, load_vad, load_whisper

__all__ = ["NO_SPEECH_LANGUAGE", "AsrOptions", "Language", "LanguageOptions", "Loaded",
           "OnSegments", "Recognized", "Segment", "SpeechWindows", "Task", "Transcript",
           "VadOptions", "VadParams", "Window", "Word", "detect_language", "find_speech",
           "load_vad", "load_whisper", "recognize", "spoken_language", "transcribe"]
