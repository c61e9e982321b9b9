"""Errors a user can fix, each rendered as one line: ``<file>: <problem>[; <fix>]``."""


class TfcovidError(Exception):
    """Base class of user-fixable problems; the CLI prints the message and exits with status 2."""


class DataError(TfcovidError):
    """A data file is missing, unreadable, or not what it claims to be."""


class ConfigError(TfcovidError):
    """An experiment configuration has an unknown key, a wrong type or an out-of-range value."""


class WeightsError(TfcovidError):
    """A weights file is missing or does not fit the model."""


class DivergedError(TfcovidError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


class TfcovidWarning(UserWarning):
    """Something suspicious that does not stop the work; the test suite turns it into an error."""
