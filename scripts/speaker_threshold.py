"""Choose `speaker_match_threshold` on real voices: Debian's recorded Asterisk prompts
(one speaker per voice package). For each voice, disjoint groups of prompts give a
"reference sample" (prompts concatenated to >= 4 s of speech, as a user would send) and a
"speaker centroid" (mean of per-prompt CAM++ embeddings, as diarization returns it). Prints
the cosine similarity distribution for same-speaker and different-speaker pairs.

    .venv/bin/python scripts/speaker_threshold.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speakers.identify import SAMPLE_RATE, _campplus, _speech, cosine, embed

SOUNDS = Path("/usr/share/asterisk/sounds")
# en/es Allison are the same woman in two languages: same speaker across languages.
VOICES = {"en_US_f_Allison": "allison", "es_MX_f_Allison": "allison",
          "fr_CA_f_June": "june", "it_IT_f_Menardi": "menardi", "it_IT_m_Carlo": "carlo",
          "ru_RU_f_IvrvoiceRU": "ivrvoice"}
GROUPS = 4  # sample/centroid pairs per voice
PROMPTS_PER_CENTROID = 6


def prompts(voice: str) -> list[np.ndarray]:
    import whisperx

    out = []
    for path in sorted((SOUNDS / voice).glob("*.wav")):
        if "tone" in path.name or "beep" in path.name:
            continue
        speech = _speech(whisperx.load_audio(str(path)))
        if len(speech) >= 1.2 * SAMPLE_RATE:
            out.append(speech)
        if len(out) >= GROUPS * (PROMPTS_PER_CENTROID + 4):
            break
    return out


def main() -> None:
    model = _campplus("cpu")
    samples, centroids = [], []  # (person, vector)
    for voice, person in VOICES.items():
        clips = prompts(voice)
        if len(clips) < GROUPS * 2:  # its package isn't installed here
            print(f"{voice}: {len(clips)} prompts under {SOUNDS / voice}, left out")
            continue
        step = len(clips) // GROUPS
        for g in range(GROUPS):
            group = clips[g * step:(g + 1) * step]
            sample, rest = [], group
            while rest and sum(len(c) for c in sample) < 4 * SAMPLE_RATE:
                sample, rest = sample + [rest[0]], rest[1:]
            samples.append((person, voice, embed(model, np.concatenate(sample))))
            vecs = [embed(model, c) for c in rest[:PROMPTS_PER_CENTROID]]
            centroids.append((person, voice, np.mean(vecs, axis=0)))
    same, diff, cross_lang = [], [], []
    for i, (p1, v1, a) in enumerate(samples):
        for j, (p2, v2, b) in enumerate(centroids):
            if i == j:
                continue
            sim = cosine(a, b)
            (same if p1 == p2 and v1 == v2 else cross_lang if p1 == p2 else diff).append(sim)
    for name, values in (("same speaker", same), ("same speaker, other language", cross_lang),
                         ("different speakers", diff)):
        v = np.array(values)
        if not len(v):  # e.g. no voice recorded in two languages is installed
            print(f"{name:30s} n=  0")
            continue
        print(f"{name:30s} n={len(v):3d} min={v.min():.3f} p5={np.percentile(v, 5):.3f} "
              f"median={np.median(v):.3f} p95={np.percentile(v, 95):.3f} max={v.max():.3f}")


if __name__ == "__main__":
    main()
