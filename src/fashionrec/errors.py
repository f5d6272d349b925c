"""The exceptions fashionrec raises, each with a message a shop owner can act on.

Every error a user can cause derives from `FashionrecError`, so the CLI, API and web app can turn
them into a clear message and exit code instead of a traceback.
"""


class FashionrecError(Exception):
    """Base class: something the user can fix (bad input, missing file, wrong settings)."""


class SettingsError(FashionrecError, ValueError):
    """A FASHIONREC_* environment variable holds a value the setting cannot take."""


class ImageError(FashionrecError):
    """An image could not be used: unreadable, truncated, not an image, or too large."""


class ModelError(FashionrecError):
    """A model name is unknown, or a model cannot be built or loaded."""


class WeightsNotFoundError(ModelError):
    """A backbone's weights file is neither on disk nor downloadable."""


class MetadataError(FashionrecError):
    """The metadata file (styles.csv) cannot be read."""


class CatalogError(FashionrecError):
    """A catalog is missing, empty, or cannot hold what was asked of it."""


class StorageError(CatalogError):
    """The catalog's disk refused a write (full, read-only, no permission): nothing half-written was kept."""


class ModelMismatchError(CatalogError):
    """A catalog built with one model was asked to take or compare vectors of another."""


class ProductNotFoundError(CatalogError):
    """A product id is not in the catalog."""


class ProductIdError(FashionrecError):
    """A product id that could not be a file name (and so never a product of a folder of photos)."""


class FilterError(FashionrecError):
    """A metadata filter names an unknown column or is badly written."""


class UnsupportedImageFormatError(ImageError):
    """The file is an image or document format fashionrec does not decode (EPS, PSD, SVG, TIFF, HEIC, ...)."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the limit for its format, as its header says (nothing was decoded)."""


SHOWN_CHARS = 64
"""The most characters of a value (an id, a file name, a parameter) a message quotes."""


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`value` quoted as a message shows it (its repr), cut to `limit` characters with "…": an error never echoes
    a 10 KB id or file name back in full, yet says which one it was."""
    if isinstance(value, str):
        return repr(cut(value, limit))
    try:
        text = repr(value)
    except RecursionError:  # nested deeper than repr goes
        return f"a {type(value).__name__} nested too deep to show"
    return cut(text, limit)


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` as a message says it unquoted (a path, a column): its first `limit` characters, then "…"."""
    return text if len(text) <= limit else text[:limit] + "…"
