"""The one place where known errors become one line on stderr and an exit code (2 for bad input)."""

from __future__ import annotations

import sys

import typer


def run_app(app) -> None:
    from vlp.platform.errors import GateFailed, VlpUserError

    try:
        # Outside standalone mode click returns a `typer.Exit(code)` raised by a command instead of raising it.
        exit_code = app(standalone_mode=False)
    except (VlpUserError, GateFailed) as err:
        fail(str(err), err.exit_code)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except typer.TyperException as err:
        context = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # Typer has already printed the help
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        fail(f"{err.format_message()}{hint}", 2)
    else:
        if isinstance(exit_code, int) and exit_code:
            sys.exit(exit_code)


def fail(message: str, code: int) -> None:
    lines = message.strip().splitlines()
    print(f"vlp: error: {lines[0] if lines else 'error'}", file=sys.stderr)
    sys.exit(code)
