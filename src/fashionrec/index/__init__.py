"""Indexing: a folder of product photos (and styles.csv) into a catalog, and single products added or removed.

`plan` (scan, what changed), `read` (the one path from an image to what the catalog stores), `engine` (local or
Ray), `progress`, `run` (`index_images`), `write` (live writes), `metadata` (styles.csv as shipped).
"""

from fashionrec.index.metadata import MetadataTable, read_metadata
from fashionrec.index.run import IndexReport, index_images

__all__ = ["IndexReport", "MetadataTable", "index_images", "read_metadata"]
