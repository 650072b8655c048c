"""Issue 21's code-switching figures, from whole jobs (base model, CPU) on real voices: two-voice
calls that switch between English and Russian at every turn (scripts/conversations.py
`codeswitched`, Debian's recorded prompts with their published transcripts).

- WER of the call transcribed with `multilingual: true` against the oracle, each turn transcribed
  alone with its language given, in the same run (target <= 1.15x), and with the mode off;
- the share of turns whose words carry the right `language` (target >= 90 %);
- WDER (scripts/wder.py) of the code-switched calls transcribed with the mode on and diarization
  on (the token-free default backend), against the same mixer's one-language two-voice
  conversations (conversations.py `same-language`), same job settings, same run (target: no
  higher); the diarized job's WER is printed too;
- on one-language calls (the same builder, one voice's language on both sides): WER and job
  time with the mode on against off (target: within 3 %). Timings on a shared machine are
  noisy: the two modes alternate, and only their ratio within this run is printed.

`--split dev` is the part tuned on (decoding.MIXED_BELOW, transcription.MIN_PIECE: override
them with --mixed-below / --min-piece); `heldout` (prompts the dev split never uses) is the
part reported.

    .venv/bin/python scripts/codeswitch_bench.py --split heldout
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MODELS_DIR", str(ROOT / "models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CONTAINER_LOG", str(ROOT / ".cache" / "bench-container-log.txt"))

import conversations  # noqa: E402 (after the environment above)
import wder  # noqa: E402

PAIR = ("en-allison", "ru-ivrvoice")


def normalize(text: str) -> str:
    text = text.lower().replace("ё", "е")
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return jiwer.wer([normalize(r) or "-" for r in references],
                     [normalize(h) for h in hypotheses])


def job(path: Path, **params: object) -> tuple[dict, float]:
    import ctranslate2

    import handler

    ctranslate2.set_random_seed(0)  # temperature fallback samples: same draw on every run
    os.environ["LOCAL_INPUT_DIR"] = str(path.parent)
    start = time.perf_counter()
    out = handler.handler({"id": "bench", "input": {
        "audio_file": path.name, "model": "base", "compute_type": "int8",
        "diarization": False, **params}})
    assert "error" not in out, out["error"]
    return out, time.perf_counter() - start


def by_turn(out: dict, turns: list[conversations.Turn]) -> list[tuple[str, dict[str, float]]]:
    """Each turn's words (by the word's middle; a segment's middle where it has no words),
    and the seconds of them in each language."""
    bounds = [(t.start + (turns[i - 1].end if i else t.start)) / 2 for i, t in enumerate(turns)]
    texts: list[list[str]] = [[] for _ in turns]
    languages: list[dict[str, float]] = [{} for _ in turns]
    for s in out["segments"]:
        for w in s.get("words") or [{"word": s["text"], "start": s["start"], "end": s["end"]}]:
            if w.get("start") is None:
                continue
            middle = (w["start"] + w["end"]) / 2
            k = max(i for i, b in enumerate(bounds) if b <= middle) if middle >= 0 else 0
            texts[k].append(w["word"])
            lang = languages[k]
            lang[s["language"]] = lang.get(s["language"], 0.0) + (w["end"] - w["start"])
    return [(" ".join(t), lang) for t, lang in zip(texts, languages, strict=True)]


def main() -> None:
    import soundfile

    from asr import decoding, transcription

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=conversations.SPLITS, default="heldout")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--mixed-below", type=float, default=decoding.MIXED_BELOW)
    parser.add_argument("--min-piece", type=float, default=transcription.MIN_PIECE)
    parser.add_argument("--no-wder", action="store_true", help="skip the diarized jobs")
    parser.add_argument("--no-cost", action="store_true",
                        help="skip the one-language calls (the mode's cost)")
    args = parser.parse_args()
    decoding.MIXED_BELOW, transcription.MIN_PIECE = args.mixed_below, args.min_piece
    refs: list[str] = []
    hyp = {"on": [], "off": [], "oracle": [], "diarized": []}  # type: dict[str, list[str]]
    right = turns_total = cut = 0
    wders = {"code-switched": wder.Score(0, 0, 0), "one-language": wder.Score(0, 0, 0)}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.calls):
            mix, turns = conversations.codeswitched(index, args.split, PAIR, args.turns)
            path = Path(tmp) / f"{mix.name}.wav"
            soundfile.write(path, mix.audio, conversations.RATE)
            on, _ = job(path, multilingual=True, debug=True)
            off, _ = job(path)
            diarized = on if args.no_wder else job(path, multilingual=True, diarization=True)[0]
            wders["code-switched"] += wder.score(mix.turns, wder.timed_words(diarized["segments"]))
            cut += on["debug_info"]["decode"]["cut_as_mixed_language"]
            for turn, (text_on, langs), (text_off, _), (text_diarized, _) in zip(
                    turns, by_turn(on, turns), by_turn(off, turns), by_turn(diarized, turns),
                    strict=True):
                alone = Path(tmp) / "turn.wav"
                soundfile.write(alone, turn.audio, conversations.RATE)
                oracle, _ = job(alone, language=turn.language)
                refs.append(turn.text)
                hyp["on"].append(text_on)
                hyp["off"].append(text_off)
                hyp["diarized"].append(text_diarized)
                hyp["oracle"].append(" ".join(s["text"] for s in oracle["segments"]))
                turns_total += 1
                got = max(langs, key=lambda k: langs[k]) if langs else "-"
                right += got == turn.language
                print(f"  {mix.name} {turn.start:5.1f}-{turn.end:5.1f} {turn.language} {got} "
                      f"WER oracle {wer([turn.text], [hyp['oracle'][-1]]):.2f} on "
                      f"{wer([turn.text], [text_on]):.2f} | {normalize(turn.text)[:40]} | "
                      f"{normalize(text_on)[:40]}", flush=True)
        for index in range(0 if args.no_wder else args.calls):  # the same mixer's
            # one-language two-voice calls
            mix = conversations.conversation("same-language", index, args.split)
            path = Path(tmp) / f"{mix.name}.wav"
            soundfile.write(path, mix.audio, conversations.RATE)
            diarized, _ = job(path, multilingual=True, diarization=True)
            wders["one-language"] += wder.score(mix.turns, wder.timed_words(diarized["segments"]))
        oracle_wer = wer(refs, hyp["oracle"])
        print(f"\nsplit {args.split}: {args.calls} code-switched calls (en/ru), {turns_total} "
              f"turns; MIXED_BELOW {decoding.MIXED_BELOW}, MIN_PIECE {transcription.MIN_PIECE}"
              f"; {cut} window(s) cut as mixed")
        print("| transcript | WER | / oracle |")
        print("|---|---|---|")
        for name in ("oracle", "on", "off", "diarized"):
            value = wer(refs, hyp[name])
            label = {"oracle": "oracle (turn alone, language given)",
                     "on": "multilingual: true", "off": "multilingual: false",
                     "diarized": "multilingual: true, diarization: true"}[name]
            print(f"| {label} | {value:.3f} | {value / oracle_wer:.2f}x |")
        print(f"turns with the right language (multilingual): {right}/{turns_total} "
              f"({100 * right / turns_total:.0f} %)")
        if not args.no_wder:
            print("\nWDER, multilingual and diarization on (token-free default backend):")
            print("| calls | WDER | wrong / counted words |")
            print("|---|---|---|")
            for name, sc in wders.items():
                label = {"code-switched": f"code-switched en/ru ({args.calls})",
                         "one-language": f"one-language, same-language ({args.calls})"}[name]
                print(f"| {label} | {sc.wder:.3f} | {sc.wrong} / {sc.counted} |")
        if args.no_cost:
            return
        print("\none-language calls, multilingual on vs off (same run, alternating):")
        print("| call | WER off | WER on | time off (s) | time on (s) | time on/off |")
        print("|---|---|---|---|---|---|")
        for voice in PAIR:
            mix, turns = conversations.codeswitched(0, args.split, (voice, voice), args.turns)
            path = Path(tmp) / f"{mix.name}.wav"
            soundfile.write(path, mix.audio, conversations.RATE)
            job(path)  # warm: the first job of a kind loads what it needs
            results: dict[str, list] = {"off": [], "on": []}
            for _ in range(2):
                for mode in ("off", "on"):
                    results[mode].append(job(path, multilingual=mode == "on"))
            reference = [t.text for t in turns]
            w = {m: wer([" ".join(reference)], [" ".join(s["text"] for s in r[0][0]["segments"])])
                 for m, r in results.items()}
            t = {m: sum(x[1] for x in r) / len(r) for m, r in results.items()}
            print(f"| {conversations.VOICES[voice][2]} ({voice}) | {w['off']:.3f} | "
                  f"{w['on']:.3f} | {t['off']:.1f} | {t['on']:.1f} | {t['on'] / t['off']:.3f} |")


if __name__ == "__main__":
    main()
