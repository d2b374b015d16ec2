"""Exceptions of the link (all :class:`bitlet.LinkError`, so callers catch one class)."""
from __future__ import annotations

from bitlet.errors import LinkError

__all__ = ["LinkBroken", "LinkError", "LinkProtocolError", "LinkTimeout"]


class LinkBroken(LinkError):
    """The connection was closed or failed (reconnect may help)."""


class LinkTimeout(LinkError, TimeoutError):
    """No progress on the link within the bounded timeouts and retries."""


class LinkProtocolError(LinkError):
    """The peer sent something the protocol does not allow."""
