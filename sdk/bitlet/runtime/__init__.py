"""Run compiled models: locally over a Device (:mod:`~bitlet.runtime.model`), on a
board behind ``bitlet agent`` (:mod:`~bitlet.runtime.remote`, served by
:mod:`~bitlet.runtime.agent`), both behind :class:`~bitlet.runtime.protocol.Model`;
and ``bitlet.compile``/``bitlet.load`` (:mod:`~bitlet.runtime.compile`)."""
from bitlet.runtime.compile import compile, load, load_program
from bitlet.runtime.model import CompiledModel
from bitlet.runtime.protocol import Model
from bitlet.runtime.remote import RemoteModel

__all__ = ["CompiledModel", "Model", "RemoteModel", "compile", "load", "load_program"]
