"""The stored catalog: metadata reader, SQLite store, the build/update pipeline, and `Catalog`."""

from fashionrec.catalog.build import IndexReport, index_images
from fashionrec.catalog.catalog import Catalog
from fashionrec.catalog.metadata import MetadataTable, read_metadata
from fashionrec.catalog.store import SkippedFile

__all__ = ["Catalog", "IndexReport", "MetadataTable", "SkippedFile", "index_images", "read_metadata"]
