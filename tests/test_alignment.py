"""Word timings: whisperx's wav2vec2 alignment (real loading code, a tiny model built here,
since no wav2vec2 weights can be had offline) and the Whisper cross-attention fallback (real
weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ENGLISH_TEXT, NO_SAMPLING, normalize

JOB = {"diarization": False, "language": "en", "debug": True}


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised Wav2Vec2ForCTC with an English character vocabulary, saved the
    way Hugging Face checkpoints are: whisperx loads it with from_pretrained like any other."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    path = tmp_path_factory.mktemp("tiny-wav2vec2")
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    (path / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(path / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(chars), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(path)
    return path


def assert_words_are_sane(result: dict) -> None:
    """Every word timed, in order, inside its segment, with both scores; together they spell
    the text."""
    last_start = 0.0
    for segment in result["segments"]:
        words = segment["words"]
        assert words, segment
        for w in words:
            assert w["start"] is not None and w["end"] is not None, w
            assert segment["start"] - 0.01 <= w["start"] <= w["end"] <= segment["end"] + 0.01
            assert w["start"] >= last_start - 0.01
            assert 0.0 <= w["score"] <= 1.0
            assert 0.0 <= w["probability"] <= 1.0  # Whisper's own, beside alignment's score
            last_start = w["start"]
        assert normalize(" ".join(w["word"] for w in words)) == normalize(segment["text"])


def test_wav2vec2_alignment_with_a_local_model(run_job, english_wav, local_file, tiny_wav2vec2,
                                               monkeypatch):
    monkeypatch.setenv("ALLOW_REMOTE_MODELS", "true")  # a path outside MODELS_DIR
    result = run_job({"audio_file": local_file(english_wav), "align_model": str(tiny_wav2vec2),
                      "return_char_alignments": True} | JOB)
    assert "error" not in result, result["error"]
    assert result["debug_info"]["alignment"] == {"method": "wav2vec2",
                                                 "model": str(tiny_wav2vec2)}
    assert not any("alignment" in w for w in result["warnings"]), result["warnings"]
    assert "alignment" in result["debug_info"]["timings"]
    # whisperx splits windows into sentences with NLTK punkt_tab, which setup provides:
    # ENGLISH_TEXT has three sentences.
    assert len(result["segments"]) >= 3
    assert_words_are_sane(result)
    assert all("chars" in s for s in result["segments"])


def test_missing_alignment_model_falls_back_to_whisper_timings(run_job, english_wav,
                                                               local_file, monkeypatch):
    # Offline, whisperx's English model (a torchaudio download) isn't baked here: the worker
    # goes straight to the fallback, without trying the network.
    def no_network(*args, **kwargs):
        raise AssertionError(f"network call while offline: {args}")

    monkeypatch.setattr("socket.getaddrinfo", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    result = run_job({"audio_file": local_file(english_wav), "word_timestamps": True} | JOB)
    assert "error" not in result, result["error"]
    assert result["debug_info"]["alignment"] == {"method": "whisper", "model": None}
    assert any(w.startswith("alignment model 'WAV2VEC2_ASR_BASE_960H' for language 'en' is "
                            "not in this image (")
               and w.endswith("downloads are off; word timings come from Whisper's "
                              "cross-attention (bake it with the image's ALIGN_LANGUAGES).")
               for w in result["warnings"]), result["warnings"]
    assert_words_are_sane(result)
    flat = result["word_timestamps"]
    assert [w["word"] for w in flat] == [w["word"] for s in result["segments"]
                                        for w in s["words"]]
    assert normalize(" ".join(w["word"] for w in flat)).startswith("please call")
    spoken = normalize(ENGLISH_TEXT).split()
    assert len(flat) >= 0.8 * len(spoken)


def test_bad_align_model_path_falls_back_with_warning(run_job, english_wav, local_file,
                                                      tmp_path, monkeypatch):
    monkeypatch.setenv("ALLOW_REMOTE_MODELS", "true")
    result = run_job({"audio_file": local_file(english_wav),
                      "align_model": str(tmp_path / "nope")} | JOB)
    assert "error" not in result, result["error"]
    assert any(w.startswith(f"alignment model '{tmp_path / 'nope'}' for language 'en' is not "
                            "in this image") for w in result["warnings"]), result["warnings"]
    assert_words_are_sane(result)


def test_language_without_alignment_model_uses_whisper_timings(run_job, english_wav,
                                                               local_file):
    # Whisper can be told the audio is Latin; whisperx has no Latin alignment model. (English
    # decoded as Latin fails every threshold: without NO_SAMPLING its text would be a draw at
    # temperature 1.0, whose word timings are not what is checked.)
    result = run_job({"audio_file": local_file(english_wav), "language": "la",
                      "diarization": False} | NO_SAMPLING)
    assert "error" not in result, result["error"]
    assert ("no alignment model for language 'la'; word timings come from Whisper's "
            "cross-attention (set align_model to a wav2vec2 CTC model for this language)."
            in result["warnings"])
    assert all(s["words"] for s in result["segments"])


def test_no_alignment_when_not_asked(run_job, english_wav, local_file):
    result = run_job({"audio_file": local_file(english_wav), "align_output": False} | JOB)
    assert result["debug_info"]["alignment"] is None
    assert all("words" not in s for s in result["segments"])
