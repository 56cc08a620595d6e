"""User-facing errors.

Anything a user can cause (a bad flag, a missing file, a corrupt bundle, a network
that does not fit the hardware) raises a subclass of :class:`UserError`. The CLI
prints its message on one line, without a traceback, and exits with ``exit_code``.
"""

__all__ = ["UserError", "UsageError", "DataError", "BundleError", "MissingBundleError", "SpecError", "FitError"]


class UserError(Exception):
    """A problem the user can fix; printed as one line by the CLI."""

    exit_code = 1


class UsageError(UserError):
    """CLI misuse: unknown option value, missing input file, bad flag."""

    exit_code = 2


class DataError(UsageError):
    """A data set that cannot be found or read."""


class SpecError(UserError):
    """An integer spec or layer parameter out of its legal range."""


class BundleError(UserError):
    """A bundle that is truncated, corrupted, of the wrong version or inconsistent."""


class FitError(UserError):
    """A network that does not fit the generated hardware or the FPGA."""


class MissingBundleError(BundleError, UsageError):
    """A bundle path that does not exist or is not a file: CLI misuse."""

    exit_code = 2
