"""Where a Milvus collection is (`milvus://`, `milvuss://`, `milvus-lite://` addresses) and the credentials to reach it, never in the address."""

from __future__ import annotations

import logging
import re
import urllib.parse
from dataclasses import dataclass, field

from fashionrec.config import Settings, load_settings
from fashionrec.errors import FashionrecError

log = logging.getLogger(__name__)


DEFAULT_COLLECTION = "fashionrec"


DEFAULT_PORT = 19530


SERVER_SCHEMES = {"milvus": "http", "milvuss": "https"}  # address scheme -> client URI scheme (https: TLS)


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


@dataclass(frozen=True)
class MilvusTarget:
    """Where a collection lives: the client URI (a server, or a Milvus Lite file) and the collection name."""

    uri: str
    collection: str
    token: str = field(default="", repr=False)  # credentials: never printed

    @property
    def lite(self) -> bool:
        """Milvus Lite: a local file, opened in-process by one program at a time."""
        return not self.uri.startswith(("http://", "https://"))


def parse_target(address: str, settings: Settings | None = None) -> MilvusTarget:
    """`milvus://HOST[:PORT]/COLLECTION`, `milvuss://HOST[:PORT]/COLLECTION` (TLS) or
    `milvus-lite:///path/file.db[?collection=NAME]`; a server's credentials come from the settings
    (FASHIONREC_MILVUS_TOKEN or FASHIONREC_MILVUS_TOKEN_FILE), never from the address.

    Raises:
        FashionrecError: the address is not one of those forms, holds credentials, or names no valid collection;
            the credentials settings are both set, or their file is missing, unreadable or empty.

    Example:
        >>> parse_target("milvuss://db.internal/shop")
        MilvusTarget(uri='https://db.internal:19530', collection='shop')
        >>> parse_target("milvus-lite:///srv/catalog.db").collection
        'fashionrec'
    """
    parsed = urllib.parse.urlsplit(address.strip())
    scheme = parsed.scheme.lower()
    if scheme in SERVER_SCHEMES:
        if parsed.username is not None or parsed.password is not None:
            raise FashionrecError(
                f"a Milvus address cannot hold credentials (ps, shell history and logs would show them): use "
                f"{_without_credentials(parsed)} and put USER:PASSWORD or an API key in FASHIONREC_MILVUS_TOKEN, or in "
                f"a file named by FASHIONREC_MILVUS_TOKEN_FILE")
        if not parsed.hostname:
            raise FashionrecError(f"a Milvus address needs a host: {scheme}://HOST:{DEFAULT_PORT}/COLLECTION, "
                                  f"got {address!r}")
        collection = parsed.path.strip("/") or DEFAULT_COLLECTION
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        token = milvus_token(settings or load_settings())
        if token and scheme == "milvus" and parsed.hostname not in LOOPBACK_HOSTS:
            log.warning("the Milvus credentials go unencrypted to %s: use milvuss://%s/%s (TLS) unless the network "
                        "between you is private", parsed.hostname, parsed.netloc, collection)
        target = MilvusTarget(f"{SERVER_SCHEMES[scheme]}://{host}:{parsed.port or DEFAULT_PORT}", collection, token)
    elif scheme == "milvus-lite":
        path = urllib.parse.unquote(parsed.netloc + parsed.path)
        if not path.endswith(".db"):
            raise FashionrecError(f"a Milvus Lite address names a .db file: milvus-lite:///path/catalog.db, "
                                  f"got {address!r}")
        collection = urllib.parse.parse_qs(parsed.query).get("collection", [DEFAULT_COLLECTION])[0]
        target = MilvusTarget(path, collection)
    else:
        raise FashionrecError(f"a Milvus address starts with milvus://, milvuss:// (TLS) or milvus-lite://, "
                              f"got {address!r}")
    if not NAME_PATTERN.fullmatch(target.collection):
        raise FashionrecError(f"{target.collection!r} is not a Milvus collection name (letters, digits, _)")
    return target


def milvus_token(settings: Settings) -> str:
    """The Milvus server's credentials from FASHIONREC_MILVUS_TOKEN or FASHIONREC_MILVUS_TOKEN_FILE ("" if neither).

    Raises:
        FashionrecError: both are set, or the file is missing, unreadable or empty.
    """
    path = settings.milvus_token_file
    if path is None:
        return settings.milvus_token
    if settings.milvus_token:
        raise FashionrecError("set only one of FASHIONREC_MILVUS_TOKEN and FASHIONREC_MILVUS_TOKEN_FILE")
    try:
        token = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FashionrecError(f"the Milvus credentials file {path} (FASHIONREC_MILVUS_TOKEN_FILE) does not "
                              f"exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FashionrecError(f"cannot read the Milvus credentials file {path} (FASHIONREC_MILVUS_TOKEN_FILE): "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise FashionrecError(f"the Milvus credentials file {path} (FASHIONREC_MILVUS_TOKEN_FILE) is empty: write "
                              f"USER:PASSWORD or an API key in it")
    if mode & 0o077:
        log.warning("other users can read the Milvus credentials file %s: chmod 600 %s", path, path)
    return token


def _without_credentials(parsed: urllib.parse.SplitResult) -> str:
    """The address with its user and password left out (for a message that must not repeat them)."""
    host = parsed.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parsed.scheme, host, parsed.path, parsed.query, ""))
