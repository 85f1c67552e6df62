"""A CSV/TSV table of images and captions in open_clip's layout (`filepath` and a caption column).

Relative image paths are read relative to the table's own folder, so a table and its images can move
together (to another disk or an S3 prefix). Optional columns give each image a class and a domain.
"""

from __future__ import annotations

import csv
import io
from typing import Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import is_s3, join, open_storage
from vlp.workloads.data.readers.records import EvalRecord, EvalSource, dataset_name


def open_table(
    uri: str,
    image_column: str = "filepath",
    caption_column: str = "title",
    label_column: str | None = None,
    domain_column: str | None = None,
    separator: str | None = None,
    classnames: tuple[str, ...] = (),
) -> EvalSource:
    rows = read_rows(uri, separator)
    columns = set(rows[0]) if rows else set()
    for role, column in (("image", image_column), ("caption", caption_column), ("label", label_column), ("domain", domain_column)):
        if column is not None and column not in columns:
            raise StorageError(f"{uri}: no {role} column {column!r} (columns: {', '.join(sorted(columns)) or 'none'})")
    base = uri.rsplit("/", 1)[0] if "/" in uri else "."

    def read() -> Iterator[EvalRecord]:
        for row in rows:
            path = row[image_column]
            image_uri = path if is_s3(path) or path.startswith("/") else join(base, path)
            yield EvalRecord(
                key=path,
                image=open_storage(image_uri).read_bytes(image_uri),
                caption=row[caption_column],
                label=row[label_column] if label_column else None,
                domain=row[domain_column] if domain_column else None,
            )

    if not classnames and label_column:
        classnames = tuple(sorted({row[label_column] for row in rows}))
    return EvalSource(name=dataset_name(uri), uri=uri, format="csv", classnames=classnames, read=read)


def read_rows(uri: str, separator: str | None = None) -> list[dict[str, str]]:
    """The rows of a `.csv`/`.tsv` table in storage (tab-separated for `.tsv` unless `separator` says otherwise; a
    UTF-8 byte-order mark, as spreadsheet exports write, is not part of the first column's name)."""
    storage = open_storage(uri)
    if not storage.exists(uri):
        raise StorageError(f"{uri}: no such table")
    separator = separator or ("\t" if uri.lower().endswith(".tsv") else ",")
    return list(csv.DictReader(io.StringIO(storage.read_bytes(uri).decode("utf-8-sig")), delimiter=separator))
