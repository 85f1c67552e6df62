"""The one place where known errors become one line on stderr and an exit code (2 for bad input)."""

from __future__ import annotations

import sys

import click


def run_app(app) -> None:
    from vlp.platform.errors import GateFailed, VlpUserError

    try:
        app(standalone_mode=False)
    except VlpUserError as err:
        fail(str(err), err.exit_code)
    except GateFailed as err:
        fail(str(err), err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as err:
        fail(err.format_message().splitlines()[0] if err.format_message() else "invalid usage", 2, usage=getattr(err, "ctx", None))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def fail(message: str, code: int, usage=None) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "error"
    hint = f" (see `{usage.command_path} --help`)" if usage is not None else ""
    print(f"vlp: error: {first_line}{hint}", file=sys.stderr)
    sys.exit(code)
