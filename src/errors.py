"""Errors whose message is meant for the API caller: what was wrong and how to fix it."""


class JobError(Exception):
    """A job cannot complete; str(exc) is returned as the job's `error`."""


class InputError(JobError):
    """The request (or an environment default) is invalid."""


class AudioError(JobError):
    """The audio could not be fetched or decoded."""
