"""Link URLs: ``serial:///dev/ttyUSB1?baud=921600``, ``tcp://HOST:PORT``
(``socket://`` is an alias, as in pyserial) -> :class:`LinkAddress`."""
from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

from bitlet.errors import BitletValueError

#: baud rate of a serial URL without ``?baud=``
DEFAULT_BAUD = 115200
#: line bits per byte on a UART (8N1: start + 8 data + stop)
BITS_PER_BYTE = 10


@dataclasses.dataclass(frozen=True)
class LinkAddress:
    """A parsed link URL.

    Attributes
    ----------
    scheme : str
        ``"serial"`` or ``"tcp"`` (``socket://`` parses as ``"tcp"``).
    path : str
        Serial device (``/dev/ttyUSB1``, ``COM3``); empty for TCP.
    host : str
        TCP host; empty for serial.
    port : int
        TCP port (0: any free port, for a listening agent); 0 for serial.
    baud : int
        Serial baud rate; 0 for TCP.
    options : dict
        The remaining query parameters (string values).
    """

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    baud: int = 0
    options: dict = dataclasses.field(default_factory=dict)

    def pyserial_url(self) -> str:
        """The URL to hand to ``serial.serial_for_url``."""
        if self.scheme == "serial":
            return self.path
        return f"socket://{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.scheme == "serial":
            return f"serial://{self.path}?baud={self.baud}"
        return f"tcp://{self.host}:{self.port}"


#: URL schemes of a link (``socket`` is pyserial's name for ``tcp``); ``bitlet.open`` hands
#: such URLs to :func:`bitlet.drivers.remote.open_remote`
REMOTE_SCHEMES = ("serial", "tcp", "socket")


def parse_url(url: str, *, default_host: str = "127.0.0.1") -> LinkAddress:
    """Parse a link URL.

    Parameters
    ----------
    url : str
        ``serial:///dev/ttyPS0?baud=921600``, ``serial://COM3``,
        ``tcp://HOST:PORT``, ``tcp://:PORT`` (host = ``default_host``) or
        ``socket://HOST:PORT``.
    default_host : str
        Host used when the URL names none.

    Returns
    -------
    LinkAddress

    Raises
    ------
    bitlet.BitletValueError
        Unknown scheme, missing device or port, bad baud rate.
    """
    if not isinstance(url, str):
        raise BitletValueError(f"url must be a string like 'tcp://HOST:PORT', got {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if scheme == "serial":
        path = parts.netloc + parts.path
        if not path:
            raise BitletValueError(f"url {url!r}: no serial device (serial:///dev/ttyUSB1?baud=921600)")
        baud_text = options.pop("baud", str(DEFAULT_BAUD))
        try:
            baud = int(baud_text)
        except ValueError:
            baud = 0
        if baud <= 0:
            raise BitletValueError(f"url {url!r}: baud must be a positive integer, got {baud_text!r}")
        return LinkAddress("serial", path=path, baud=baud, options=options)
    if scheme in ("tcp", "socket"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise BitletValueError(f"url {url!r}: no TCP port (tcp://HOST:PORT)")
        return LinkAddress("tcp", host=parts.hostname or default_host, port=port, options=options)
    raise BitletValueError(
        f"url {url!r}: unknown link scheme {parts.scheme!r}; use serial://DEVICE?baud=N or tcp://HOST:PORT")
