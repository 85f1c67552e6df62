"""Image folders, `root/class/*.jpg` as torchvision's ImageFolder reads them: the folder name is the class,
and class folders sort into class indices."""

from __future__ import annotations

from typing import Iterator

from vlp.platform.errors import StorageError
from vlp.platform.storage import open_storage
from vlp.workloads.data.readers.records import EvalRecord, EvalSource, dataset_name, is_image


def list_images(root: str) -> list[tuple[tuple[str, ...], str]]:
    """(folder parts below root, image URI) for every image under root."""
    prefix = root.rstrip("/") + "/"
    images = []
    for uri in open_storage(root).list(prefix):
        relative = uri[len(prefix):]
        parts = tuple(relative.split("/"))
        if is_image(parts[-1]) and not any(part.startswith(".") for part in parts):
            images.append((parts[:-1], uri))
    if not images:
        raise StorageError(f"{root}: no images found (expected root/class/*.jpg or root/domain/class/*.jpg)")
    return images


def open_image_folder(root: str, classnames: tuple[str, ...] = ()) -> EvalSource:
    images = [(folders, uri) for folders, uri in list_images(root) if len(folders) == 1]
    if not images:
        raise StorageError(f"{root}: no images directly inside class folders (expected root/class/*.jpg)")
    found = tuple(sorted({folders[0] for folders, _ in images}))
    return folder_source(root, "folder", images, classnames or found, lambda folders: (folders[0], None))


def folder_source(root: str, format: str, images, classnames, label_and_domain) -> EvalSource:
    prefix = root.rstrip("/") + "/"

    def read() -> Iterator[EvalRecord]:
        for folders, uri in images:
            label, domain = label_and_domain(folders)
            yield EvalRecord(key=uri[len(prefix):], image=open_storage(uri).read_bytes(uri), label=label, domain=domain)

    return EvalSource(name=dataset_name(root), uri=root, format=format, classnames=tuple(classnames), read=read)
