"""Our public API against the official client's, read from the official
package itself: the same modules, names, signatures (parameters, order,
defaults), dataclass fields and enum members. Ours may add keyword-only
parameters and trailing fields with defaults; it leaves out only the helpers
that convert to and from the official client's generated OpenAPI models."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
from pathlib import Path

import pytest

# Helpers of the official client that exist to convert to and from its
# generated layer (h2o_audit_trail.gen), which ours does not have.
GENERATED_LAYER = {
    "h2o_audit_trail.auth.token_api_client",
}


def _is_gen_helper(name: str) -> bool:
    return "_api" in name or name.endswith("_to_api") or "google_rpc" in name


def public_names(official):
    """(module, name, object) for every public name the official client
    defines in its own (non-generated) modules."""
    for modname, mod in sorted(official.modules.items()):
        if modname.startswith("h2o_audit_trail.gen") or modname in GENERATED_LAYER:
            continue
        for name, obj in vars(mod).items():
            if name.startswith("_") or _is_gen_helper(name):
                continue
            constant = name.isupper() and isinstance(obj, (str, int))
            if getattr(obj, "__module__", None) != modname and not constant and not (
                modname == "h2o_audit_trail" and name in ("login", "login_custom")
            ):
                continue  # imported from elsewhere
            yield modname, name, obj


def test_every_public_name_exists(official):
    missing = []
    for modname, name, _ in public_names(official):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            missing.append(modname)
            continue
        if not hasattr(mod, name):
            missing.append(f"{modname}.{name}")
    assert missing == []
    found = {f"{m}.{n}" for m, n, _ in public_names(official)}
    assert {"h2o_audit_trail.login", "h2o_audit_trail.event.client.EventClient",
            "h2o_audit_trail.connection_config.AUDIT_TRAIL_SERVICE_NAME",
            "h2o_audit_trail.exception.CustomApiException"} <= found, "the reading of the official package broke"


def assert_compatible_signature(theirs, ours, where):
    t, o = inspect.signature(theirs), inspect.signature(ours)
    tp, op = list(t.parameters.values()), list(o.parameters.values())
    assert [p.name for p in op[: len(tp)]] == [p.name for p in tp], f"{where}: parameters {o} vs official {t}"
    for a, b in zip(tp, op):
        assert a.kind == b.kind or (a.kind, b.kind) == (a.POSITIONAL_OR_KEYWORD, b.POSITIONAL_OR_KEYWORD), where
        if a.default is not a.empty:  # (ours may give a default to a required parameter)
            assert a.default == b.default, f"{where}: default of {a.name}: {b.default!r} vs official {a.default!r}"
    for extra in op[len(tp):]:
        assert extra.kind == extra.KEYWORD_ONLY and extra.default is not extra.empty, (
            f"{where}: added parameter {extra.name} must be keyword-only with a default")


def test_signatures_and_fields(official):
    checked = 0
    for modname, name, theirs in public_names(official):
        ours = getattr(importlib.import_module(modname), name)
        where = f"{modname}.{name}"
        if dataclasses.is_dataclass(theirs):
            tf, of = dataclasses.fields(theirs), dataclasses.fields(ours)
            assert [f.name for f in of[: len(tf)]] == [f.name for f in tf], where
            for a, b in zip(tf, of):
                assert a.default == b.default, f"{where}.{a.name} default"
                assert (a.default_factory is dataclasses.MISSING) == (b.default_factory is dataclasses.MISSING), where
                if a.default_factory is not dataclasses.MISSING:
                    assert a.default_factory() == b.default_factory(), where
            assert all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
                       for f in of[len(tf):]), f"{where}: added fields need defaults"
        elif isinstance(theirs, type) and issubclass(theirs, enum.Enum):
            assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs], where
        elif isinstance(theirs, type) and hasattr(theirs, "_fields"):  # NamedTuple
            assert ours._fields == theirs._fields, where
        elif isinstance(theirs, type):
            assert_compatible_signature(theirs.__init__, ours.__init__, where + ".__init__")
            for mname, method in vars(theirs).items():
                if not mname.startswith("_") and callable(method):
                    assert_compatible_signature(method, getattr(ours, mname), f"{where}.{mname}")
                    checked += 1
        elif callable(theirs):
            assert_compatible_signature(theirs, ours, where)
            checked += 1
        else:
            assert ours == theirs, where  # constants
    assert checked >= 8


@pytest.mark.parametrize("modname", ["h2o_audit_trail.event.event_type", "h2o_audit_trail.event.event"])
def test_event_type_is_importable_from_both_paths(modname):
    from h2o_audit_trail.event.event_type import EventType

    assert importlib.import_module(modname).EventType is EventType


def test_exception_attributes(official):
    from h2o_audit_trail.exception import ApiException, CustomApiException

    e = CustomApiException(ApiException(404, "Not Found", '{"code":5,"message":"Not Found"}', {"a": "b"}))
    assert (e.status, e.reason, e.body, e.headers) == (404, "Not Found", '{"code":5,"message":"Not Found"}', {"a": "b"})
    assert (e.code, e.message) == (5, "Not Found")
    assert isinstance(e, ApiException) and isinstance(e, Exception)


def test_types_are_shipped():
    import h2o_audit_trail

    assert (Path(h2o_audit_trail.__file__).parent / "py.typed").is_file()
