"""Errors whose message is meant for the API caller: what was wrong and how to fix it."""


def brief(exc: BaseException) -> str:
    """The first line of an exception's message, short enough for a warning or an error."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


class JobError(Exception):
    """A job cannot complete; str(exc) is returned as the job's `error`."""


class InputError(JobError):
    """The request (or an environment default) is invalid."""


class AudioError(JobError):
    """The audio could not be fetched or decoded."""
