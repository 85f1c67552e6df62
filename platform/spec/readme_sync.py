"""Rewrite the README's experiment-file reference from the spec: `python -m vlp.platform.spec.readme_sync README.md`."""

from __future__ import annotations

import sys
from pathlib import Path

from vlp.platform.spec.reference import BEGIN, END, markdown_reference


def synced(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{markdown_reference()}\n{END}{tail}"


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_text(synced(path.read_text()))
