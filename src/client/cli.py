"""whisperx-client: transcribe many files through a RunPod endpoint or workers' base URLs.

    whisperx-client --folder episodes/ --endpoint $ENDPOINT_ID --params params.json --out out/
    whisperx-client --urls urls.txt --url http://127.0.0.1:8001 --url http://127.0.0.1:8002 \\
        --out out/
    whisperx-client --folder long/ --split 10 --endpoint $ENDPOINT_ID --out out/  # fan out

Exit status: 0 when every input has a result, 1 when some failed, 2 when the run could not
start or had to stop (bad arguments, a refused API key, no target reachable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from . import sources
from .runner import Options, Runner, Tally, summary
from .store import Busy, Store
from .targets import Fatal, HttpTarget, Pool, RunPodTarget

AUDIO_KEYS = ("audio_file", "audio", "audio_base64")


class UsageError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whisperx-client", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Docs: docs/scale-out.md (Bulk client).")
    src = p.add_argument_group("inputs (one of)").add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", type=Path, help="audio/video files under this folder "
                     "(recursively), sent inline as base64")
    src.add_argument("--urls", type=Path, help="a text file of http(s) URLs, one a line")
    src.add_argument("--s3", metavar="S3_URI", help="s3://bucket/prefix: every audio/video "
                     "object under it, sent as a presigned GET URL (boto3's credentials)")
    tgt = p.add_argument_group("target (one of)").add_mutually_exclusive_group(required=True)
    tgt.add_argument("--endpoint", metavar="ID", help="a RunPod endpoint id (RUNPOD_API_KEY)")
    tgt.add_argument("--url", action="append", metavar="BASE_URL",
                     help="a worker's base URL, e.g. http://127.0.0.1:8001 (repeat it: jobs "
                          "are spread over them)")
    # RunPod Batch jobs (batch.py, batch_api.py)
    bat = p.add_argument_group("RunPod Batch jobs (with --endpoint)")
    bat.add_argument("--batch", action="store_true",
                     help="send the inputs as Batch jobs on the endpoint's batch workers "
                          "instead of /run: cheaper, hours of latency; a rerun re-attaches "
                          "(docs/scale-out.md, Batch jobs)")
    bat.add_argument("--cancel-on-exit", action="store_true",
                     help="cancel this run's batches when it is stopped (Ctrl-C); by default "
                          "they go on and a rerun picks up their results")
    bat.add_argument("--batch-poll-max", type=float, default=60.0, metavar="SECONDS",
                     help="longest wait between two looks at a batch's progress (default 60)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    p.add_argument("--params", type=Path, help="JSON file of request parameters for every job")
    p.add_argument("--concurrency", type=int, default=8,
                   help="jobs in flight at once (default 8)")
    p.add_argument("--retries", type=int, default=3, help="retries of a job that failed for "
                   "a reason other than its input (default 3)")
    p.add_argument("--job-timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="cancel and retry a job not finished this long after it was sent, "
                        "queue time included (default 3600)")
    p.add_argument("--max-inline-mb", type=float, default=sources.RUN_PAYLOAD_MB,
                   help="largest request with an inline file (default 10: RunPod's /run "
                        "limit); larger files are skipped with a message")
    p.add_argument("--retry-failed", action="store_true",
                   help="resend inputs that failed before with an input error")
    p.add_argument("--s3-endpoint-url", help="S3-compatible endpoint for --s3 (R2, MinIO, ...); "
                   "AWS_ENDPOINT_URL works too")
    p.add_argument("--url-expiry", type=int, metavar="SECONDS",
                   help="lifetime of the presigned URLs (default 6 h, with --batch 7 days: "
                        "made per attempt, they must outlast the time a job waits in the "
                        "queue)")
    p.add_argument("--unreachable-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="stop when no target has been reachable for this long (default 300)")
    p.add_argument("--skip-params-check", action="store_true",
                   help="don't check --params against this client's parameter table (for an "
                        "endpoint running a newer worker)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp = p.add_argument_group("one long file across workers (--folder only)")
    sp.add_argument("--split", type=float, metavar="MINUTES",
                    help="cut each file at pauses into chunks of about MINUTES, send them as "
                         "separate jobs, merge the results (speakers linked across chunks)")
    sp.add_argument("--split-codec", choices=("flac", "opus"), default="flac",
                    help="how chunks are sent: flac (lossless, ~1 MB a minute) or opus "
                         "(48 kbit/s, ~0.36 MB a minute: long chunks under RunPod's 10 MB)")
    sp.add_argument("--split-link-threshold", type=float, metavar="COSINE",
                    help="lowest cosine similarity of two chunks' speaker embeddings that "
                         "makes them one speaker (default: the job's speaker_match_threshold, "
                         "0.72)")
    return p


async def _run_batch(args: argparse.Namespace, items: list[sources.Item],
                     params: dict[str, Any], store: Store, session: aiohttp.ClientSession) -> int:
    from .batch import BatchRunner

    options = Options(params=params, retries=args.retries, max_inline_mb=args.max_inline_mb,
                      retry_failed=args.retry_failed, progress=not args.no_progress)
    runner = BatchRunner(items, store, options, session, args.endpoint,
                         cancel_on_exit=args.cancel_on_exit, poll_max_s=args.batch_poll_max,
                         unreachable_s=args.unreachable_timeout)
    tally = await runner.run()
    store.write_failures(tally.failures)
    print(summary(tally, runner.pool, str(store.folder)), flush=True)
    if tally.stopped:
        return 2
    return 1 if tally.failed else 0


def load_params(path: Path | None, check: bool) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--params {path}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise UsageError(f"--params {path}: not valid JSON ({exc}).") from None
    if not isinstance(params, dict):
        raise UsageError(f'--params {path}: expected a JSON object like {{"language": "en", '
                         f'"output_format": "srt"}}, got {type(params).__name__}.')
    audio = [k for k in AUDIO_KEYS if k in params]
    if audio:
        raise UsageError(f"--params {path}: {', '.join(audio)} is set per input by the client; "
                         "remove it.")
    if check:
        try:
            import rp_schema
            from worker.errors import InputError
        except ImportError:  # the client installed without the worker: the endpoint checks
            return params
        try:  # the request's own values only: the endpoint's environment isn't ours
            rp_schema.resolve({"audio_file": "https://example.com/a.mp3", **params}, environ={})
        except InputError as exc:
            raise UsageError(f"--params {path}: {exc}") from None
    return params


async def _run(args: argparse.Namespace, items: list[sources.Item], params: dict[str, Any],
               store: Store) -> int:
    connector = aiohttp.TCPConnector(limit=args.concurrency + 16)
    async with aiohttp.ClientSession(connector=connector, raise_for_status=True) as session:
        if args.batch:  # RunPod Batch jobs: batch.py
            return await _run_batch(args, items, params, store, session)
        if args.endpoint:
            targets: list[Any] = [RunPodTarget(args.endpoint, session)]
        else:
            targets = [HttpTarget(url, session) for url in dict.fromkeys(args.url)]
        pool = Pool(targets, args.unreachable_timeout)
        options = Options(params=params, concurrency=args.concurrency, retries=args.retries,
                          job_timeout_s=args.job_timeout, max_inline_mb=args.max_inline_mb,
                          retry_failed=args.retry_failed, progress=not args.no_progress)
        if args.split:
            return await _run_split(args, items, options, pool, store, session)
        runner = Runner(items, pool, store, options, session)
        tally = await runner.run()
    store.write_failures(tally.failures)
    print(summary(tally, pool, str(store.folder)), flush=True)
    if tally.stopped:
        return 2
    return 1 if tally.failed else 0


async def _run_split(args: argparse.Namespace, items: list[sources.Item], options: Options,
                     pool: Pool, store: Store, session: aiohttp.ClientSession) -> int:
    """Each file cut into chunk jobs (the runner sends them: concurrency, retries and resume
    as for files), then each file whose chunks all have results merged."""
    from worker.errors import AudioError

    from . import split
    from .splitter import Settings, Splitter

    splitter = Splitter(store, options.params, Settings(args.split, args.split_codec,
                                                        args.split_link_threshold))
    prepared, failures, skipped = [], [], 0
    for item in items:
        try:
            ready = await asyncio.to_thread(splitter.prepare, item)
        except AudioError as exc:  # the worker's own message for a file that doesn't decode
            failures.append({"input": item.name, "key": item.key(), "kind": "input_error",
                             "error": str(exc), "attempts": 0, "history": []})
            print(f"failed {item.name}: {exc}", file=sys.stderr, flush=True)
            continue
        if ready is None:
            skipped += 1
        else:
            prepared.append(ready)
    chunks = [c for p in prepared for c in p.items]
    # speakers are linked across chunks by their embeddings (every chunk job returns them);
    # the file's speaker-count bounds become each chunk's (split.chunk_params)
    chunk_options = Options(**{**vars(options),
                               "params": split.chunk_params(options.params)})
    tally = await Runner(chunks, pool, store, chunk_options, session).run() if chunks else Tally()
    merged = 0
    for ready in prepared:
        why = await asyncio.to_thread(splitter.merge, ready)
        if why is None:
            merged += 1
        else:
            failures.append({"input": ready.item.name, "key": ready.key, "kind": "not_merged",
                             "error": f"{ready.item.name}: {why}", "attempts": 0,
                             "history": []})
    tally.failures += failures
    store.write_failures(tally.failures)
    print(summary(tally, pool, str(store.folder)), flush=True)
    print(f"split: {len(items)} files, {len(chunks)} chunks; {merged} merged, {skipped} done "
          f"before, {len(failures)} not merged", flush=True)
    if tally.stopped:
        return 2
    return 1 if tally.failed or failures else 0


def _items(args: argparse.Namespace) -> tuple[list[sources.Item], int]:
    if args.folder:
        return sources.from_folder(args.folder, exclude=args.out)
    if args.urls:
        return sources.from_url_file(args.urls), 0
    import boto3

    s3 = boto3.client("s3", endpoint_url=args.s3_endpoint_url)
    return sources.from_s3(args.s3, s3, args.url_expiry)


def import_split_check() -> None:
    try:
        import whisperx  # noqa: F401

        import rp_schema  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"--split decodes and cuts files with the worker's own code, which "
                         f"is not installed here ({exc}); install the project, not only the "
                         "client.") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if (args.cancel_on_exit or args.batch) and not args.endpoint:
        parser().error("--batch and --cancel-on-exit need --endpoint ID (Batch jobs run on a "
                       "RunPod endpoint's batch workers).")
    if args.cancel_on_exit and not args.batch:
        parser().error("--cancel-on-exit goes with --batch (a /run job is cancelled when it "
                       "passes --job-timeout).")
    if args.url_expiry is None:  # a batch may wait hours to start: SigV4's longest lifetime
        args.url_expiry = 7 * 24 * 3600 if args.batch else 6 * 3600
    for name in ("concurrency", "retries"):
        if getattr(args, name) < (1 if name == "concurrency" else 0):
            parser().error(f"--{name}: got {getattr(args, name)}, expected "
                           f"{'a positive' if name == 'concurrency' else 'a non-negative'} "
                           "integer.")
    if args.split is not None and not args.split > 0:
        parser().error(f"--split: got {args.split:g}, expected a positive number of minutes "
                       "(e.g. --split 10).")
    if args.split and not args.folder:
        parser().error("--split needs --folder: the client decodes each file itself to cut it "
                       "at pauses. Download the files and pass --folder, or send them whole.")
    for url in args.url or []:
        if not url.startswith(("http://", "https://")):
            parser().error(f"--url {url!r}: expected a base URL like http://127.0.0.1:8000.")
    try:
        params = load_params(args.params, not args.skip_params_check)
        items, other = _items(args)
        if args.split:
            import_split_check()
        # split results differ from whole-file ones: a rerun must not take one for the other
        store = Store(args.out, params if not args.split else {
            **params, "client_split": {"minutes": args.split, "codec": args.split_codec,
                                       "link_threshold": args.split_link_threshold}})
    except (UsageError, sources.SourceError, Busy) as exc:
        print(f"whisperx-client: {exc}", file=sys.stderr)
        return 2
    if other:
        print(f"whisperx-client: {other} files that are not audio/video passed over.",
              file=sys.stderr)
    if not items:
        print("whisperx-client: no audio/video inputs found.", file=sys.stderr)
        store.close()
        return 2
    try:
        return asyncio.run(_run(args, items, params, store))
    except Fatal as exc:
        print(f"whisperx-client: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("whisperx-client: interrupted; rerun the same command to go on.", file=sys.stderr)
        return 130
    finally:
        store.close()
