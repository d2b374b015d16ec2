"""Run compiled models: locally over a Device (:mod:`~bitlet.runtime.model`), on a
board behind ``bitlet agent`` (:mod:`~bitlet.runtime.remote`, served by
:mod:`~bitlet.runtime.agent`), both behind :class:`~bitlet.runtime.protocol.Model`;
and ``bitlet.compile`` (:mod:`~bitlet.runtime.compile`)."""
from bitlet.runtime.compile import compile
from bitlet.runtime.model import CompiledModel, load

__all__ = ["CompiledModel", "compile", "load"]
