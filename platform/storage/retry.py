"""Retry whole storage operations through an outage of the object store.

botocore retries single HTTP requests, but its budget is a few attempts with random jitter: a store that is
down for 15 s can exhaust it in under a second. Here the whole operation (a PUT with its body, a GET with its
streamed read, a listing with all its pages) is retried with exponential backoff until a deadline, so an
outage shorter than `VLP_STORAGE_RETRY_SECONDS` (default 180) costs time, not the run. Only transient
failures are retried: a missing key, a denied request or a bad bucket name fails at once.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BUDGET_SECONDS = 180.0
MAX_DELAY_SECONDS = 4.0
TRANSIENT_CODES = {
    "500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "Throttling",
    "ThrottlingException", "RequestTimeout", "RequestLimitExceeded", "TooManyRequestsException",
}


def retry_budget_seconds() -> float:
    return float(os.environ.get("VLP_STORAGE_RETRY_SECONDS", DEFAULT_BUDGET_SECONDS))


def is_transient(err: BaseException) -> bool:
    """True for failures that a later attempt can cure: no connection, a dropped connection, 5xx, throttling."""
    from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError

    seen: set[int] = set()
    current: BaseException | None = err
    # boto3's transfer manager wraps the cause (S3UploadFailedError); follow the chain.
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError, ConnectionError, TimeoutError)):
            return True
        if isinstance(current, ClientError):
            error = current.response.get("Error", {})
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return str(error.get("Code", "")) in TRANSIENT_CODES or status >= 500
        if type(current).__module__.startswith("urllib3") and type(current).__name__ in ("ProtocolError", "ReadTimeoutError", "NewConnectionError"):
            return True
        current = current.__cause__ or current.__context__
    return False


def with_retries(operation: Callable[[], T], what: str, budget_seconds: float | None = None) -> T:
    """Run `operation`; on a transient failure wait and run it again until the budget is spent."""
    budget = retry_budget_seconds() if budget_seconds is None else budget_seconds
    started = time.monotonic()
    delay, attempts = 0.25, 0
    while True:
        attempts += 1
        try:
            result = operation()
        except Exception as err:
            waited = time.monotonic() - started
            if not is_transient(err) or waited + delay > budget:
                if attempts > 1:
                    log.error("%s: giving up after %d attempts over %.0fs: %s", what, attempts, waited, _one_line(err))
                raise
            log.warning("%s: %s; attempt %d, retrying in %.1fs", what, _one_line(err), attempts, delay)
            time.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(delay * 2, MAX_DELAY_SECONDS)
            continue
        if attempts > 1:
            log.warning("%s: succeeded after %d attempts (%.1fs)", what, attempts, time.monotonic() - started)
        return result


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}"
