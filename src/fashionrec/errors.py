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
