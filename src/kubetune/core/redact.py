"""Keep secrets out of what kubetune shows: URLs with passwords, error texts quoting them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["redact_url", "url_password"]

# libpq and most drivers also take the password as a query parameter
_QUERY_SECRET = re.compile(r"(?i)((?:^|[?&;])(?:password|passwd|pwd)=)[^&;]*")


def url_password(url: str) -> str | None:
    """The password written in ``url`` (``scheme://user:PASSWORD@host/...``), if any."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or the query) shown as ``***``.

    Anything that does not parse as a URL is returned with everything between ``://`` and
    the last ``@`` hidden, so a malformed URL cannot leak what it holds either.
    """
    try:
        parts = urlsplit(url)
        shown = url
        if parts.password is not None:  # only the user info changes, the rest stays as typed
            user_info = parts.netloc.rpartition("@")[0]
            shown = shown.replace(f"{user_info}@", f"{user_info.split(':', 1)[0]}:***@", 1)
        if parts.query:
            head, _, query = shown.partition("?")
            shown = head + "?" + _QUERY_SECRET.sub(r"\1***", query)
        return shown
    except ValueError:
        head, sep, rest = url.partition("://")
        if sep and "@" in rest:
            return f"{head}://***@{rest.rpartition('@')[2]}"
        return url
