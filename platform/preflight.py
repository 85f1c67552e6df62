"""Checks that need the outside world (do the data paths exist?), run before any work starts so a mistake
costs one line and leaves nothing behind."""

from __future__ import annotations

from vlp.platform.errors import SpecError
from vlp.platform.spec import ExperimentSpec
from vlp.platform.storage import open_storage


def check_inputs(spec: ExperimentSpec) -> None:
    if spec.data.source != "shards":
        return
    for field, uri in (("data.train", spec.data.train), ("data.eval", spec.data.eval)):
        if uri and not _has_shards(uri):
            raise SpecError(f"{field}: no webdataset shards (*.tar) found at {uri}; check the path or run `vlp data make shapes --out {uri}`")


def _has_shards(uri: str) -> bool:
    try:
        return any(item.endswith(".tar") for item in open_storage(uri).list(uri.rstrip("/") + "/"))
    except Exception as err:  # unreachable endpoint, no bucket, no permission: say so on the field
        raise SpecError(f"cannot list {uri}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
