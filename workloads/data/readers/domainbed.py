"""DomainBed-style folders, `root/domain/class/*.jpg`: the first folder is the domain, the second the class."""

from __future__ import annotations

from dataclasses import replace

from vlp.platform.errors import StorageError
from vlp.workloads.data.readers.image_folder import folder_source, list_images
from vlp.workloads.data.readers.records import EvalSource


def open_domainbed(root: str, classnames: tuple[str, ...] = ()) -> EvalSource:
    images = [(folders, uri) for folders, uri in list_images(root) if len(folders) == 2]
    if not images:
        raise StorageError(f"{root}: no images in domain/class folders (expected root/domain/class/*.jpg)")
    found = tuple(sorted({folders[1] for folders, _ in images}))
    domains = tuple(sorted({folders[0] for folders, _ in images}))
    source = folder_source(root, "domainbed", images, classnames or found, lambda folders: (folders[1], folders[0]))
    return replace(source, domains=domains)
