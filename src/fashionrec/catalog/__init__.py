"""The stored catalog: the SQLite store (only this package opens it), `Catalog` snapshots, the search space, and the
keys and publishing rules of everything derived from the products."""

from fashionrec.catalog.catalog import Catalog

__all__ = ["Catalog"]
