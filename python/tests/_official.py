"""The published H2O client (h2o-audit-trail 1.5.3), side by side with ours.

Both are imported as ``h2o_audit_trail``, so they cannot share one
installation directory. The official one is taken from the directory named by
the environment variable H2O_AUDIT_TRAIL_OFFICIAL (``pip install --target DIR
h2o-audit-trail==1.5.3``), else from an intact installation on sys.path (such
as the site-packages of tests/compat's virtualenv; ours comes from src/), else
it is installed into a cache directory. It is loaded once and its modules are
kept aside. ``activate()`` puts them in place of ours in
sys.modules for the time of a ``with`` block, so that code written for the
H2O client (``import h2o_audit_trail`` ...) runs unchanged against either.

Its generated layer (``h2o_audit_trail.gen``, which ours does not have) stays
in sys.modules for good: the generated models import each other lazily.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, Iterator

VERSION = "1.5.3"
ENV = "H2O_AUDIT_TRAIL_OFFICIAL"
PKG = "h2o_audit_trail"


def _pkg_modules() -> Dict[str, ModuleType]:
    return {k: v for k, v in sys.modules.items() if k == PKG or k.startswith(PKG + ".")}


def install_dir() -> Path:
    """A directory holding the official package and its dependencies."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        if not (path / PKG / "gen").is_dir():
            raise RuntimeError(f"{ENV}={given} does not hold h2o-audit-trail (pip install --target {given} "
                               f"h2o-audit-trail=={VERSION})")
        return path
    for entry in sys.path:  # an intact installation in this environment (not mixed with ours)
        path = Path(entry or ".")
        if ((path / PKG / "gen" / "api").is_dir() and not (path / PKG / "_http.py").exists()
                and (path / f"h2o_audit_trail-{VERSION}.dist-info").is_dir()):
            return path
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "audittrail-python-tests"
    target = cache / f"h2o-audit-trail-{VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
           "--target", str(tmp), f"h2o-audit-trail=={VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"cannot install the official client ({' '.join(cmd)}):\n{done.stdout}{done.stderr}\n"
            f"Install it yourself with pip install --target DIR h2o-audit-trail=={VERSION} and set {ENV}=DIR."
        )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / ".complete").touch()
    return target


class Official:
    """The official client's modules, loaded aside."""

    def __init__(self, path: Path) -> None:
        ours = _pkg_modules()
        for name in ours:
            del sys.modules[name]
        sys.path.insert(0, str(path))
        importlib.invalidate_caches()
        try:
            pkg = importlib.import_module(PKG)
            if not str(pkg.__file__).startswith(str(path)):
                raise RuntimeError(f"loaded {pkg.__file__}, not the official client from {path}")
            for info in pkgutil.walk_packages(pkg.__path__, PKG + "."):
                importlib.import_module(info.name)
            self.modules = _pkg_modules()
        finally:
            for name in _pkg_modules():
                del sys.modules[name]
            sys.path.remove(str(path))
            sys.modules.update(ours)
            importlib.invalidate_caches()
        # Its dependencies (requests, h2o_authn, ...) may import more later.
        if str(path) not in sys.path:
            sys.path.append(str(path))
        sys.modules.update({k: v for k, v in self.modules.items() if k.startswith(PKG + ".gen")})
        self.version = getattr(self.modules[PKG], "__version__", "?")

    def module(self, name: str) -> ModuleType:
        return self.modules[name]

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Within the block, ``import h2o_audit_trail...`` gives the official client."""
        saved = {k: v for k, v in _pkg_modules().items() if not k.startswith(PKG + ".gen")}
        for name in saved:
            del sys.modules[name]
        sys.modules.update(self.modules)
        try:
            yield
        finally:
            for name in [k for k in _pkg_modules() if not k.startswith(PKG + ".gen")]:
                del sys.modules[name]
            sys.modules.update(saved)
