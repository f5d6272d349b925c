"""Scan a folder of product photos and plan a run: what to embed, keep, leave skipped or (when pruning) drop."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fashionrec.catalog.rows import FileStamp, SkippedFile, StoredProduct
from fashionrec.catalog.writer import catalog_exists
from fashionrec.config import PRODUCT_ID_PATTERN
from fashionrec.imaging.formats import is_image_file, refused_file_reason


@dataclass(frozen=True)
class ImageFile:
    """A product photo found on disk: its product id (the file name's stem) and its stamp."""

    product_id: str
    stamp: FileStamp


@dataclass(frozen=True)
class UpdatePlan:
    """What a run must do, decided from file stamps alone (no image is read to plan)."""

    todo: list[ImageFile]  # new files, or files whose size or mtime changed (the hash decides)
    unchanged: list[str]  # product ids whose file has the stamp the catalog recorded
    gone: list[str]  # products of this folder whose file is gone (removed only when pruning)
    still_skipped: list[SkippedFile]  # failed before and unchanged since: not retried
    forgotten_skips: list[str]  # skipped-file records of this folder whose file is gone
    conflicts: list[SkippedFile]  # files whose product id belongs to a file of another folder that still exists


def scan_images(images_dir: Path) -> tuple[list[ImageFile], list[SkippedFile]]:
    """Every image file under `images_dir` (recursively), in natural path order, with its stamp.

    The product id is the file name without its suffix (`images/15970.jpg` -> "15970"); a second
    file with an id already taken is reported as skipped, never silently merged; so is a file of an image
    format fashionrec does not read (.tif, .psd, .heic, ...), with the way out. A catalog folder inside it is left
    out (its images are that catalog's).
    """
    files: list[ImageFile] = []
    skipped: list[SkippedFile] = []
    owner: dict[str, str] = {}
    for root, dirs, names in os.walk(images_dir):
        if catalog_exists(root):  # a catalog inside the folder: its own images are no products of the folder
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if not is_image_file(path):
                refused = refused_file_reason(path)  # a .tif, .psd, .heic...: reported with the way out
                if refused is not None:
                    skipped.append(SkippedFile(path.relative_to(images_dir).as_posix(), refused))
                continue
            relative = path.relative_to(images_dir).as_posix()
            try:
                stat = path.stat()
            except OSError as exc:
                skipped.append(SkippedFile(relative, f"cannot read the file: {exc.strerror or exc}"))
                continue
            product_id = path.stem
            if _kept_by_a_catalog(path):
                continue
            if not is_product_id(product_id):
                skipped.append(SkippedFile(relative, f"the file name {product_id!r} cannot be a product id (1 to 128 "
                                           "letters, digits, '.', '_' or '-', starting with a letter or digit, as "
                                           "every write takes): rename the file", stat.st_size, stat.st_mtime_ns))
                continue
            if product_id in owner:
                skipped.append(SkippedFile(relative, f"product id {product_id!r} is already used by {owner[product_id]}",
                                           stat.st_size, stat.st_mtime_ns))
                continue
            owner[product_id] = relative
            files.append(ImageFile(product_id, FileStamp(relative, stat.st_size, stat.st_mtime_ns)))
    files.sort(key=lambda f: natural_key(f.stamp.path))
    return files, skipped


PRODUCT_ID = re.compile(PRODUCT_ID_PATTERN)
"""What a product id may be, wherever it comes from (a file name here, a write's id): it names an image file."""


def is_product_id(text: object) -> bool:
    """Whether `text` can be a product id (`PRODUCT_ID`)."""
    return isinstance(text, str) and PRODUCT_ID.fullmatch(text) is not None


def _kept_by_a_catalog(path: Path) -> bool:
    """A photo a catalog keeps itself (images/<ab>/<sha256 starting ab>.ext): never a product of a folder."""
    stem = path.stem
    return len(stem) == 64 and path.parent.name == stem[:2] and all(c in "0123456789abcdef" for c in stem)


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders numbers by value: "2.jpg" < "10.jpg" (so --limit takes the lowest ids)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def plan_update(
    files: list[ImageFile],
    folder: str,
    products: dict[str, StoredProduct],
    skipped: dict[str, SkippedFile],
    limit: int | None = None,
) -> UpdatePlan:
    """Compare the files of `folder` with the catalog: what to embed, keep, leave skipped, or (if pruning) drop.

    A file whose product id belongs to another folder's file takes the product over when that file is gone (a
    folder that was moved) or holds the same picture (a copy); a different picture under that id is reported as a
    conflict (such files are hashed here: the only files read while planning). `limit` restricts the files
    considered for indexing to the first `limit` (in natural path order); it never makes a product count as gone.
    """
    present_ids = {f.product_id for f in files}
    present_paths = {f.stamp.path for f in files}
    plan = UpdatePlan(
        todo=[], unchanged=[],
        gone=[i for i, product in products.items() if product.folder == folder and i not in present_ids],
        still_skipped=[], forgotten_skips=[path for path in skipped if path not in present_paths], conflicts=[],
    )
    for file in files[:limit] if limit is not None else files:
        stamp, before = file.stamp, products.get(file.product_id)
        failed = skipped.get(stamp.path)
        if before and before.folder != folder:
            other = Path(before.folder) / before.stamp.path
            if other.exists() and _content_hash(Path(folder) / stamp.path) != before.stamp.sha256:
                plan.conflicts.append(SkippedFile(stamp.path, (
                    f"product id {file.product_id!r} is already in the catalog from {other}, with another picture; "
                    f"rename this file, or remove that one and index its folder with --prune"),
                    stamp.size, stamp.mtime_ns))
            else:  # moved or copied here with the same picture: the product follows it (no embedding if unchanged)
                plan.todo.append(file)
        elif before and (before.stamp.path, before.stamp.size, before.stamp.mtime_ns) == (
                stamp.path, stamp.size, stamp.mtime_ns):
            plan.unchanged.append(file.product_id)
        elif before is None and failed and (failed.size, failed.mtime_ns) == (stamp.size, stamp.mtime_ns):
            plan.still_skipped.append(failed)
        else:
            plan.todo.append(file)
    return plan


def _content_hash(path: Path) -> str:
    """sha256 of a file's bytes ("" when it cannot be read: the reader reports why)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
