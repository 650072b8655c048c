"""Batched decoding with the temperature fallback and the silence rule, kept batched.

whisperx's `WhisperModel.generate_segment_batched` decodes every window once, by beam search at
temperature 0, and ignores `temperature`, the fallback schedule and the no-speech /
log-prob / compression-ratio thresholds. `ThresholdedWhisperModel` overrides that one method
(called by whisperx's `FasterWhisperPipeline._forward` as
`generate_segment_batched(features, tokenizer, options)`) the way faster-whisper's
`BatchedInferencePipeline` and `generate_with_fallback` work:

1. encode the batch once and decode it at `temperatures[0]` (beam search at 0, sampling with
   `best_of` candidates above 0), asking for `no_speech_prob` in the same pass;
2. windows that fail a threshold are decoded again, together, at each next temperature,
   reusing the encoder output (only their rows are taken from it). They wait in the job's
   queue, across the pipeline's batches, until a fallback batch is full, and are then
   re-decoded together (the rest when the job ends, `finish_fallback`): one or two windows of
   a batch fail, and a pass over one or two of them wastes the batching. A fallback batch
   samples at most 2 x `batch_size` sequences (`best_of` per window): each sampled sequence
   holds its own cross-attention keys and values (ctranslate2, ~40 MB each for base), so
   8 windows x 5 samples took 1 GB over the encoder's peak, 3 x 5 nothing over it;
3. a window whose re-decode says what its previous try said is *stable* and stops there:
   the audio really says it (repetitive speech such as an IVR menu trips the gzip rule with
   confident text), and higher temperatures only add noise — in faster-whisper each such
   window costs all five passes and keeps its first result anyway. A decode that ran to the
   length limit is a loop, never stable;
4. a window whose last result still fails keeps its best candidate (faster-whisper's rule);
   a window with no_speech_prob above its threshold whose log-probability is not above
   `log_prob_threshold` is silence: not re-decoded, and dropped (empty text).

Per-window results (tokens, temperature, scores) go to the job's `DecodeStats`, in window
order, because whisperx's pipeline passes on only `text` and `avg_logprob`; a queued window's
entry is its first try until its fallback has run (so read them after `finish_fallback`).

When the job will cut windows into several segments (`DecodeStats.score_tokens`), each
window's final tokens also get their own log-probabilities (`scored`), so that a segment's
`avg_logprob` is its own (output/segments.py). Beam search can't give them: ctranslate2 (4.8.5)
returns per-step logits (`return_logits_vocab`) only for greedy search and sampling, and
only the cumulative score of a beam. So one teacher-forced decoder pass over the chosen tokens
(ctranslate2's `Whisper.align`, the pass faster-whisper takes its word probabilities from,
here without the DTW) gives them: the model's probability of each token given the audio, the
prompt and the tokens before it, over the text vocabulary. All tokens at once, not step by
step: ~6% of the transcription time of a batch on CPU (base int8).

With `multilingual` (faster-whisper 1.2's `generate_segment_batched`), each window's language is
detected from the batch's encoder output (ctranslate2's `detect_language` takes it: one decoder
step per row, no second encoder pass) and each row is decoded with its own language token in
the same `generate` call; its fallback re-decodes keep that prompt. A window whose top language
is less sure than `MIXED_BELOW` and that holds a pause (`DecodeStats.cuttable`) is not decoded:
it is marked `mixed`, and transcription.py cuts it at its pauses
(docs/decoding.md#multilingual-code-switching).
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import ctranslate2
import numpy as np
import torch
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_compression_ratio
from whisperx.asr import WhisperModel

from worker import heap

log = logging.getLogger("worker.decoding")

# Windows per teacher-forced scoring pass: its logits are windows x tokens x vocabulary
# (8 x 227 x 51866 x 2 bytes: 190 MB in float16).
SCORE_BATCH = 8

# Two tries agree when this share of their characters match (difflib ratio, case and
# punctuation ignored): a sampled spelling ("DGM"/"DigM") is still the same text.
STABLE_SIMILARITY = 0.9
# Sampling above temperature 0 draws from the whole distribution (faster-whisper's top-k 0).
# Tests set 1 (greedy: every sample the same) where what they check must not depend on a draw.
SAMPLING_TOPK = 0
# multilingual: a window whose top language is less sure than this mixes languages (Whisper's
# detector gives a one-language 30 s window >= 0.95; one holding two languages shares the mass
# between them). Chosen on the dev split of scripts/codeswitch_bench.py, see docs/decoding.md.
MIXED_BELOW = 0.96
# A mixed window's candidate languages: its top ones, until they hold this share of the
# detector's mass (at most MAX_CANDIDATES). Its pieces are decoded in one of them: a short piece
# alone is easily taken for a neighbour language (Russian for Ukrainian), which the whole
# window, hearing more speech, had ruled out.
CANDIDATE_MASS = 0.9
MAX_CANDIDATES = 3
# ...unless the piece itself rules them out: a candidate less probable than this share of the
# piece's own top language is not taken. A window mostly English with one short Russian turn
# may have (en, pl) as candidates; its Russian piece (ru 0.9, pl 0.002) was decoded as Polish.
# Neighbour languages stay close (a Russian piece: uk 0.48, ru 0.45).
CANDIDATE_RATIO = 0.2


@dataclass(frozen=True)
class WindowResult:
    """One window's decoding, with faster-whisper's Segment semantics."""

    tokens: list[int]  # text tokens (below end-of-text)
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    silent: bool = False
    token_logprobs: tuple[float, ...] = ()  # one per token, when scored (module docstring)
    language: str | None = None  # the window's detected language (multilingual), else None
    language_probability: float | None = None  # the detector's probability of `language`
    mixed: bool = False  # not decoded: it mixes languages and is cut at its pauses
    candidates: tuple[str, ...] = ()  # a mixed window's: the languages its pieces may take


@dataclass
class Pending:
    """A window that failed its first try, waiting for the fallback with other windows."""

    index: int  # its place in DecodeStats.results
    tries: list[WindowResult]
    features: np.ndarray  # its log-mel window, re-encoded only when `encoded` is None
    encoded: Any  # its row of the encoder output (numpy on CPU, torch on CUDA), or None
    prompt: list[int] | None = None  # its own (its language's), else the batch's


@dataclass
class DecodeStats:
    windows: int = 0
    redecoded: int = 0  # windows decoded again at a higher temperature
    silent: int = 0  # windows dropped as silence
    fallback_passes: int = 0  # batched decoding passes at temperatures[1:]
    stable: int = 0  # re-decoded windows that stopped early: the re-decode repeated them
    temperatures: list[float] = field(default_factory=list)  # final temperature per re-decode
    results: list[WindowResult] = field(default_factory=list)  # every window, in order
    queue: list[Pending] = field(default_factory=list, repr=False)  # see rule 2
    batch_size: int = 0  # the job's batch_size (else the largest batch seen)
    score_tokens: bool = False  # give every window's tokens their log-probabilities
    # multilingual: the windows (index in the job's order) with a pause inside, which are cut
    # there instead of decoded when their language is unsure (MIXED_BELOW)
    cuttable: set[int] = field(default_factory=set)
    # multilingual: the languages a window (index in the job's order) may take: a cut piece's
    # are its window's candidates
    allowed: dict[int, tuple[str, ...]] = field(default_factory=dict)
    mixed: int = 0  # windows not decoded as they mix languages (cut by transcription.py)
    expected: tuple[str, ...] = ()  # multilingual: the languages a window may be in; (): any
    # what the queued windows were decoded with (whisperx resets its options after the job)
    context: tuple[list[int], Tokenizer, TranscriptionOptions] | None = field(
        default=None, repr=False)


# Set per job by asr.transcribe; the model object itself is shared by every job.
decode_stats: ContextVar[DecodeStats | None] = ContextVar("decode_stats", default=None)


def is_silence(no_speech_prob: float, avg_logprob: float, options: TranscriptionOptions) -> bool:
    """faster-whisper's skip rule: likely no speech, unless the text is confident enough."""
    ns, lp = options.no_speech_threshold, options.log_prob_threshold
    return (ns is not None and no_speech_prob > ns
            and not (lp is not None and avg_logprob > lp))


def needs_fallback(result: WindowResult, options: TranscriptionOptions) -> bool:
    cr, lp, ns = (options.compression_ratio_threshold, options.log_prob_threshold,
                  options.no_speech_threshold)
    failed = (cr is not None and result.compression_ratio > cr) or (
        lp is not None and result.avg_logprob < lp)
    # generate_with_fallback: a silent window is not worth another temperature
    silent = (ns is not None and lp is not None and result.no_speech_prob > ns
              and result.avg_logprob < lp)
    return failed and not silent


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def is_stable(previous: WindowResult, current: WindowResult, token_limit: int) -> bool:
    """The re-decode repeats the previous try (see the module docstring, rule 3)."""
    if len(current.tokens) >= token_limit or not _normal(current.text):
        return False
    ratio = difflib.SequenceMatcher(None, _normal(previous.text), _normal(current.text),
                                    autojunk=False).ratio()
    return ratio >= STABLE_SIMILARITY


def token_limit(max_length: int, prompt_length: int) -> int:
    """Tokens one decode may produce. ctranslate2's Whisper generates at most half the model's
    `max_length` (whisper's `sample_len = n_text_ctx // 2`: 224), and less when the prompt
    leaves less room (its prompt minus the start token is already decoded)."""
    return max(0, min(max_length // 2, max_length - (prompt_length - 1)))


def fallback_batch(batch_size: int, options: TranscriptionOptions) -> int:
    """Windows re-decoded together: at most 2 x batch_size sampled sequences (rule 2)."""
    return max(1, 2 * batch_size // max(1, options.best_of or 1))


def choose(candidates: list[WindowResult], options: TranscriptionOptions) -> WindowResult:
    """The last candidate if it passed; else (every temperature tried failed, or the window
    was stable) the best by avg_logprob among those under the compression-ratio threshold, or
    among all, reported at the last temperature tried (generate_with_fallback's rule)."""
    last = candidates[-1]
    if needs_fallback(last, options):
        cr = options.compression_ratio_threshold
        pool = [c for c in candidates if cr is None or c.compression_ratio <= cr] or candidates
        best = max(pool, key=lambda c: c.avg_logprob)
        last = replace(best, temperature=last.temperature)
    silent = is_silence(last.no_speech_prob, last.avg_logprob, options)
    return replace(last, text="" if silent else last.text, silent=silent)


def restrict(ranked: list[tuple[str, float]], expected: tuple[str, ...]
             ) -> list[tuple[str, float]]:
    """The detector's ranking among the `expected_languages` only, their probabilities
    renormalized to sum to 1 (given that it is one of them); all of it when none are given."""
    kept = [(code, p) for code, p in ranked if code in expected]
    total = sum(p for _, p in kept)
    if not kept or total <= 0:  # none given, or none of them ranked
        return ranked
    return [(code, p / total) for code, p in kept]


def pick(ranked: list[tuple[str, float]], allowed: tuple[str, ...] | None) -> tuple[str, float]:
    """The row's language: its most probable one, among `allowed` when it has a list and one
    of them is not far less probable than the row's top (CANDIDATE_RATIO)."""
    floor = ranked[0][1] * CANDIDATE_RATIO
    return next((r for r in ranked if not allowed or (r[0] in allowed and r[1] >= floor)),
                ranked[0])


def candidates(ranked: list[tuple[str, float]]) -> tuple[str, ...]:
    """A mixed window's candidate languages (CANDIDATE_MASS, MAX_CANDIDATES)."""
    out: list[str] = []
    mass = 0.0
    for code, p in ranked[:MAX_CANDIDATES]:
        out.append(code)
        mass += p
        if mass >= CANDIDATE_MASS:
            break
    return tuple(out)


class ThresholdedWhisperModel(WhisperModel):
    def generate_segment_batched(
        self,
        features: np.ndarray,
        tokenizer: Tokenizer,
        options: TranscriptionOptions,
        encoder_output: Any = None,
    ) -> dict[str, list]:
        prompt = self.window_prompt(tokenizer, options)
        features = np.asarray(features)
        if encoder_output is None:
            encoder_output = self.encode(features)
        job = decode_stats.get()
        stats = job or DecodeStats()
        stats.batch_size = max(stats.batch_size, len(features))
        count = len(features)
        ranked = self.row_languages(encoder_output, tokenizer, options)
        if ranked is not None and stats.expected:
            ranked = [restrict(r, stats.expected) for r in ranked]
        languages = [pick(r, stats.allowed.get(stats.windows + i))
                     for i, r in enumerate(ranked)] if ranked is not None else None
        prompts = ([self.with_language(prompt, tokenizer, code) for code, _ in languages]
                   if languages else [prompt] * count)
        mixed = [i for i, (_, p) in enumerate(languages or [])
                 if p < MIXED_BELOW and stats.windows + i in stats.cuttable]
        rows = [i for i in range(count) if i not in mixed]  # the windows decoded here
        first: list[WindowResult] = []
        failing: list[int] = []  # positions in `rows`
        copies = None
        if rows:
            encoded, _memory = self.take(encoder_output, features, rows)
            row_features, row_prompts = features[rows], [prompts[i] for i in rows]
            first = self.decode(encoded, row_prompts, tokenizer, options,
                                options.temperatures[0])
            if languages:
                first = [replace(r, language=languages[i][0],
                                 language_probability=round(languages[i][1], 4))
                         for i, r in zip(rows, first, strict=True)]
            failing = [k for k, r in enumerate(first)
                       if len(options.temperatures) > 1 and needs_fallback(r, options)]
            if stats.score_tokens:  # the failing ones once their fallback has chosen
                first = self.scored(encoded, row_features, row_prompts, tokenizer, first,
                                    [k for k in range(len(first)) if k not in failing])
            copies = self.row_copies(encoded, failing) if failing else None
            if failing:
                stats.context = (prompt, tokenizer, options)
        for i in range(count):
            if i in mixed:
                code, p = (languages or [])[i]
                stats.results.append(WindowResult([], "", 0.0, 0.0, 0.0, 0.0, language=code,
                                                  language_probability=round(p, 4),
                                                  mixed=True,
                                                  candidates=candidates((ranked or [])[i])))
                continue
            k = rows.index(i)
            if k in failing:  # its first try stands in until the fallback replaces it
                row = copies[failing.index(k)] if copies is not None else None
                stats.queue.append(Pending(len(stats.results), [first[k]],
                                           row_features[k].copy(), row, row_prompts[k]))
                stats.results.append(first[k])
            else:
                self.record(stats, [first[k]], options)
        stats.windows += count
        stats.redecoded += len(failing)
        stats.mixed += len(mixed)
        size = fallback_batch(stats.batch_size, options)
        while len(stats.queue) >= size:
            self.fallback(stats, stats.queue[:size])
            del stats.queue[:size]
        if job is None:  # no job to finish it: this call is the whole job
            self.finish_fallback(stats)
        heap.release()  # the batch's freed decoding memory, else the heap grows with the audio
        return {"text": [r.text for r in stats.results[-count:]],
                "avg_logprob": [r.avg_logprob for r in stats.results[-count:]]}

    def finish_fallback(self, stats: DecodeStats) -> None:
        """Re-decode the windows still queued when the job's last batch is done."""
        if stats.queue:
            self.fallback(stats, stats.queue)
            stats.queue = []
            heap.release()

    def fallback(self, stats: DecodeStats, queued: list[Pending]) -> None:
        """Rules 2-4 for these windows, decoded together at each next temperature."""
        assert stats.context is not None  # set when a window is queued
        prompt, tokenizer, options = stats.context
        prompts = [p.prompt or prompt for p in queued]
        features = np.stack([p.features for p in queued])
        if all(p.encoded is not None for p in queued):
            encoded, _memory = self.from_rows([p.encoded for p in queued])
        else:
            encoded, _memory = self.encode(features), None
        pending = list(range(len(queued)))
        limit = token_limit(self.max_length, max(len(p) for p in prompts))
        for temperature in options.temperatures[1:]:
            if not pending:
                break
            rows, _rows_memory = self.take(encoded, features, pending)
            stats.fallback_passes += 1
            decoded = self.decode(rows, [prompts[i] for i in pending], tokenizer, options,
                                  temperature)
            for i, r in zip(pending, decoded, strict=True):
                first = queued[i].tries[0]  # the language detected with it
                queued[i].tries.append(replace(r, language=first.language,
                                               language_probability=first.language_probability))
            failing = [i for i in pending if needs_fallback(queued[i].tries[-1], options)]
            pending = [i for i in failing
                       if not is_stable(queued[i].tries[-2], queued[i].tries[-1], limit)]
            stats.stable += len(failing) - len(pending)
        chosen = [self.record(stats, p.tries, options, append=False) for p in queued]
        if stats.score_tokens:
            chosen = self.scored(encoded, features, prompts, tokenizer, chosen)
        for p, result in zip(queued, chosen, strict=True):
            stats.results[p.index] = result

    @staticmethod
    def record(stats: DecodeStats, tries: list[WindowResult], options: TranscriptionOptions,
               append: bool = True) -> WindowResult:
        result = choose(tries, options)
        stats.silent += result.silent
        if len(tries) > 1:
            stats.temperatures.append(result.temperature)
        if append:
            stats.results.append(result)
        return result

    def window_prompt(self, tokenizer: Tokenizer, options: TranscriptionOptions) -> list[int]:
        """whisperx's batched prompt: the same initial prompt / hotwords for every window."""
        previous = (tokenizer.encode(" " + options.initial_prompt.strip())
                    if options.initial_prompt is not None else [])
        return self.get_prompt(tokenizer, previous, without_timestamps=options.without_timestamps,
                               prefix=options.prefix, hotwords=options.hotwords)

    def decode(self, encoder_output: ctranslate2.StorageView, prompts: list[list[int]],
               tokenizer: Tokenizer, options: TranscriptionOptions,
               temperature: float) -> list[WindowResult]:
        """One batched generate at one temperature, a prompt per row: beam search at 0, else
        `best_of` samples (the best one kept), as in faster-whisper's generate_with_fallback."""
        if temperature > 0:
            search = {"beam_size": 1, "num_hypotheses": options.best_of,
                      "sampling_topk": SAMPLING_TOPK,
                      "sampling_temperature": temperature}
        else:
            search = {"beam_size": options.beam_size, "patience": options.patience}
        results = self.model.generate(
            encoder_output, prompts, length_penalty=options.length_penalty,
            max_length=self.max_length, suppress_blank=options.suppress_blank,
            suppress_tokens=options.suppress_tokens,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            repetition_penalty=options.repetition_penalty, return_scores=True,
            return_no_speech_prob=True, **search,
        )
        out = []
        for result in results:
            tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            seq_len = len(result.sequences_ids[0])
            avg_logprob = result.scores[0] * (seq_len ** options.length_penalty) / (seq_len + 1)
            text = tokenizer.decode(tokens)
            out.append(WindowResult(tokens, text, float(avg_logprob),
                                    float(result.no_speech_prob),
                                    get_compression_ratio(text.strip()), float(temperature)))
        return out

    def scored(self, encoder_output: ctranslate2.StorageView, features: np.ndarray,
               prompts: list[list[int]], tokenizer: Tokenizer, results: list[WindowResult],
               only: list[int] | None = None) -> list[WindowResult]:
        """The results (those at `only`, else all) with their tokens' log-probabilities
        (module docstring), from one teacher-forced pass per SCORE_BATCH windows of one
        decoding prompt (ctranslate2 takes one start sequence per pass: one per language)."""
        out = list(results)
        rows = [i for i in (range(len(results)) if only is None else only) if results[i].tokens]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in rows:
            groups.setdefault(tuple(prompts[i]), []).append(i)
        for prompt, members in groups.items():
            if not self.score_rows(encoder_output, features, list(prompt), tokenizer, out,
                                   members):
                break
        return out

    def score_rows(self, encoder_output: ctranslate2.StorageView, features: np.ndarray,
                   prompt: list[int], tokenizer: Tokenizer, out: list[WindowResult],
                   rows: list[int]) -> bool:
        """`scored` for rows that share a prompt, in place; False when the model can't."""
        # align() puts <|notimestamps|> after the start sequence itself; what the prompt has
        # after it (a `prefix`) is forced before the text and not scored
        cut = (prompt.index(tokenizer.no_timestamps) if tokenizer.no_timestamps in prompt
               else len(prompt))
        start, forced = prompt[:cut], prompt[cut + 1:]
        results = list(out)
        for first in range(0, len(rows), SCORE_BATCH):
            batch = rows[first: first + SCORE_BATCH]
            encoded, _memory = self.take(encoder_output, features, batch)
            try:
                # num_frames 1: no frames to align against, so no DTW, only the token probs
                aligned = self.model.align(encoded, start, [forced + list(results[i].tokens)
                                                            for i in batch], [1] * len(batch))
            except RuntimeError as exc:  # a model converted without its alignment heads
                if "alignment_heads" not in str(exc):
                    raise
                log.warning("tokens not scored (segments keep their window's avg_logprob): "
                            "%s", exc)
                return False
            for i, a in zip(batch, aligned, strict=True):
                probs = a.text_token_probs[len(forced):]
                out[i] = replace(results[i], token_logprobs=tuple(
                    math.log(max(p, 1e-30)) for p in probs))
        return True

    def row_languages(self, encoder_output: Any, tokenizer: Tokenizer,
                      options: TranscriptionOptions) -> list[list[tuple[str, float]]] | None:
        """multilingual: each row's languages, most probable first, with their probabilities,
        from the batch's encoder output (faster-whisper 1.2's batched rule); None when the job
        has one language."""
        if not options.multilingual or tokenizer.language is None:  # an English-only model
            return None
        return [[(token[2:-2], float(p)) for token, p in ranked]
                for ranked in self.model.detect_language(encoder_output)]

    @staticmethod
    def with_language(prompt: list[int], tokenizer: Tokenizer, code: str) -> list[int]:
        """The prompt with its language token replaced by `code`'s."""
        out = list(prompt)
        out[prompt.index(tokenizer.language)] = tokenizer.tokenizer.token_to_id(f"<|{code}|>")
        return out

    @staticmethod
    def from_rows(rows: list[Any]) -> tuple[ctranslate2.StorageView, Any]:
        """Rows stacked into one encoder output, and the array holding it (the view shares its
        memory, so the caller keeps it alive)."""
        stacked = (torch.stack(rows).contiguous() if isinstance(rows[0], torch.Tensor)
                   else np.ascontiguousarray(np.stack(rows)))
        return ctranslate2.StorageView.from_array(stacked), stacked

    def take(self, encoder_output: ctranslate2.StorageView, features: np.ndarray,
             rows: list[int]) -> tuple[ctranslate2.StorageView, Any]:
        """The encoder output of some windows only, copied from the batch's (no re-encoding),
        and the array holding it: the view shares its memory, so the caller keeps it alive."""
        if len(rows) == encoder_output.shape[0]:
            return encoder_output, None
        subset = self.row_copies(encoder_output, rows)
        if subset is not None:
            try:
                return ctranslate2.StorageView.from_array(subset), subset
            except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
                log.debug("can't wrap encoder rows: %s", exc)
        return self.encode(features[rows]), None  # encoding the rows again is correct too

    @staticmethod
    def row_copies(encoder_output: ctranslate2.StorageView, rows: list[int]) -> Any:
        """A contiguous copy of some windows' rows of the encoder output (torch on CUDA, numpy
        on CPU), or None where they can't be taken (e.g. bfloat16, which numpy can't hold)."""
        try:
            if encoder_output.device == "cuda":
                tensor = torch.as_tensor(encoder_output, device="cuda")
                return tensor[torch.as_tensor(rows, device="cuda")].contiguous()
            return np.ascontiguousarray(np.asarray(encoder_output)[rows])
        except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
            log.debug("can't take encoder rows: %s", exc)
            return None
