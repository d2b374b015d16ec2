"""What the two ends exchange in the handshake: versions (and their check)
and the token's challenge-response digest."""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

from bitlet import hw
from bitlet._version import __version__

#: bump on any change of frames, message layout or operations that breaks the other side;
#: additions both sides can do without are advertised instead (the agent's WELCOME
#: ``features``, e.g. ``shared_weights``: bitlet.runtime.agent.FEATURES)
PROTOCOL_VERSION = 2  # 2: memory_window, reset, model_profile_records; run timings


def local_versions() -> dict[str, Any]:
    """Protocol, SDK and ISA versions and the kernel configuration of this SDK."""
    return {
        "protocol": PROTOCOL_VERSION,
        "sdk": __version__,
        "isa": hw.ISA_VERSION,
        "magic": hw.MAGIC,
        "config": {"n_pe": hw.N_PE, "group": hw.GROUP, "act_buf_words": hw.ACT_BUF_WORDS,
                   "wgt_buf_words": hw.WGT_BUF_WORDS, "out_buf_words": hw.OUT_BUF_WORDS},
    }


def version_mismatch(mine: dict, theirs: dict, me: str, them: str) -> str | None:
    """A sentence naming both sides when two version sets cannot work together.

    Protocol, ISA version and magic must be equal; SDK versions must agree in
    major.minor; the kernel configurations must be equal where both give it;
    the ID registers of the served kernel (``theirs["kernel"]``, when the
    agent's device has probed them) must carry ``mine``'s magic and ISA.
    """
    problems = []
    for key in ("protocol", "isa", "magic"):
        if mine.get(key) != theirs.get(key):
            problems.append(f"{key} {me}={mine.get(key)!r} {them}={theirs.get(key)!r}")
    kernel = theirs.get("kernel")
    if isinstance(kernel, dict):
        for key, reg in (("magic", "magic"), ("isa", "version")):
            if reg in kernel and kernel[reg] != mine.get(key):
                problems.append(f"{key} {me}={mine.get(key)!r} {them}'s overlay={kernel[reg]!r}")
    if _major_minor(mine.get("sdk")) != _major_minor(theirs.get("sdk")):
        problems.append(f"SDK {me}={mine.get('sdk')!r} {them}={theirs.get('sdk')!r}")
    mine_cfg, their_cfg = mine.get("config") or {}, theirs.get("config") or {}
    for key in sorted(set(mine_cfg) & set(their_cfg)):
        if mine_cfg[key] != their_cfg[key]:
            problems.append(f"kernel {key} {me}={mine_cfg[key]!r} {them}={their_cfg[key]!r}")
    if not problems:
        return None
    return ("version mismatch between " + me + " and " + them + ": " + "; ".join(problems)
            + ". Install the same bitlet SDK on both sides (pip install bitlet==<version>) "
              "and load the overlay this SDK was built for.")


def _major_minor(version: Any) -> tuple:
    return tuple(str(version).split(".")[:2])


def auth_digest(token: bytes, nonce: str, client_id: str) -> str:
    """HMAC-SHA256 of the agent's nonce and the client id under the shared token."""
    return hmac.new(token, f"{nonce}:{client_id}".encode(), hashlib.sha256).hexdigest()
