"""Progress bars of the command line: ``progress(done, total, what)`` callbacks
drawn by tqdm (``tqdm.auto``: a widget in a notebook, a text bar on a
terminal), on stderr so that ``--json`` output on stdout stays clean."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["Progress"]


class Progress:
    """A ``progress(done, total, what)`` callback showing a tqdm bar.

    Parameters
    ----------
    label : str
        Shown before the bar.
    enabled : bool
        False: every call does nothing (``--json``, ``--quiet``).
    """

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label, self.enabled = label, enabled
        self._bar = None

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.label, file=sys.stderr, leave=True,
                             dynamic_ncols=True, unit="step")
        bar = self._bar
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what[:30], refresh=False)
        bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
