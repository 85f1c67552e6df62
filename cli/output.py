"""Printing: one JSON document for `--json`, rich tables otherwise."""

from __future__ import annotations

import json
import sys

PIPE_WIDTH = 400


def print_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if cell is None else str(cell) for cell in row])
    console = Console()
    if not console.is_terminal:
        # A pipe or a file gets each row on one line (for grep and friends), not wrapped at 80 columns.
        console = Console(width=PIPE_WIDTH)
    console.print(table)
