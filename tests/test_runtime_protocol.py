"""CompiledModel (local) and RemoteModel (behind ``bitlet agent``) both satisfy
bitlet.runtime.protocol.Model: every member of the Protocol exists on both
classes, of the same kind (attribute, property, method) and, for methods,
with the same parameters (names, kinds, defaults, annotations); and every
public member the two classes share is in the Protocol.

Structural (no device): the classes are compared with the Protocol, not with
each other, so a member dropped or re-signed in either class fails here.  Both
classes subclass Model and inherit the members it implements.
"""
from __future__ import annotations

import inspect
import typing

import pytest
from bitlet.runtime.model import CompiledModel
from bitlet.runtime.protocol import Model
from bitlet.runtime.remote import RemoteModel

CLASSES = [CompiledModel, RemoteModel]


def _protocol_members() -> dict[str, str]:
    """``{name: "attribute" | "property" | "method"}`` of the Protocol."""
    members = {name: "attribute" for name in typing.get_type_hints(Model, include_extras=False)}
    for name, value in vars(Model).items():
        if isinstance(value, property):
            members[name] = "property"
        elif inspect.isfunction(value) and (not name.startswith("_") or name == "__call__"):
            members[name] = "method"
    return members


def _instance_attributes(cls: type) -> set[str]:
    """Attributes ``__init__`` assigns (``self.name = ...``), read from its source."""
    source = inspect.getsource(cls.__init__)
    return {line.split("self.", 1)[1].split("=")[0].split(":")[0].strip()
            for line in source.splitlines() if line.strip().startswith("self.")}


def _public(cls: type) -> set[str]:
    names = {n for n in dir(cls) if not n.startswith("_")} | _instance_attributes(cls)
    return {n for n in names if not n.startswith("_")} | {"__call__"}


PROTOCOL = _protocol_members()


def test_the_protocol_names_the_shared_api():
    assert {"run", "__call__", "profile", "save", "close", "read_profile_records",
            "input_names", "output_names", "peak_device_bytes", "meta", "program",
            "device", "last_timings", "source_model"} <= set(PROTOCOL)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_each_model_class_has_each_protocol_member(cls, name):
    kind = PROTOCOL[name]
    if kind == "attribute":
        assert name in _instance_attributes(cls), f"{cls.__name__} does not set self.{name}"
        return
    member = inspect.getattr_static(cls, name, None)
    assert member is not None, f"{cls.__name__} has no {name}"
    if kind == "property":
        assert isinstance(member, property), f"{cls.__name__}.{name} is not a property"
        return
    assert inspect.isfunction(member), f"{cls.__name__}.{name} is not a method"
    want = inspect.signature(getattr(Model, name))
    have = inspect.signature(member)
    assert [(p.name, p.kind, p.default, p.annotation) for p in have.parameters.values()] == \
        [(p.name, p.kind, p.default, p.annotation) for p in want.parameters.values()], \
        f"{cls.__name__}.{name}{have} differs from Model.{name}{want}"
    assert have.return_annotation == want.return_annotation, \
        f"{cls.__name__}.{name} returns {have.return_annotation}, Model.{name} {want.return_annotation}"


def test_what_both_classes_share_is_in_the_protocol():
    shared = _public(CompiledModel) & _public(RemoteModel)
    missing = sorted(shared - set(PROTOCOL))
    assert not missing, f"shared by CompiledModel and RemoteModel but not in Model: {missing}"


def test_both_classes_subclass_the_protocol_and_share_its_implementations():
    """input_names, output_names, peak_device_bytes, __call__ and save are written
    once, in Model; neither class redefines them."""
    shared = ("input_names", "output_names", "peak_device_bytes", "__call__", "save")
    for cls in CLASSES:
        assert Model in cls.__mro__
        assert not set(shared) & set(vars(cls)), f"{cls.__name__} redefines {set(shared) & set(vars(cls))}"
