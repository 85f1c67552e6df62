"""Errors a user can fix. The CLI's error boundary turns each into one line and exit code 2."""


class VlpUserError(Exception):
    """A mistake in user input (experiment file, arguments, data, profile). Message is one line."""

    exit_code = 2


class SpecError(VlpUserError):
    """The experiment file or an override is invalid."""


class StorageError(VlpUserError):
    """A storage URI is malformed or an object the user pointed at is missing."""


class GateFailed(Exception):
    """A promotion gate did not pass. Exit code 1: the input was fine, the model was not."""

    exit_code = 1


class ProfileError(VlpUserError):
    """The profiles file or a `--profile` name is invalid."""


class ClusterError(VlpUserError):
    """The cluster refused or could not answer a request (unreachable, expired token, unknown run)."""
