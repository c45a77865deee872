"""`pip install ./python` in a fresh virtual environment gives a working,
typed, dependency-free package (built from a copy of python/, so the work
tree gets no build directories)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

from conftest import PYTHON_DIR

SCRIPT = r"""
import importlib.metadata, json, os, sys
from pathlib import Path
import h2o_audit_trail
from h2o_audit_trail.event.search import SearchEventsRequestFilter

pkg = Path(h2o_audit_trail.__file__).parent
clients = h2o_audit_trail.login(endpoint=os.environ["AT_ENDPOINT"], token=os.environ["AT_TOKEN"])
resp = clients.event_client.search_events(filter_=SearchEventsRequestFilter(action_regex=".*CREATE$"), page_size=5)
print(json.dumps({
    "file": str(pkg),
    "prefix": sys.prefix,
    "typed": (pkg / "py.typed").is_file(),
    "version": h2o_audit_trail.__version__,
    "events": len(resp.events),
    "requires": importlib.metadata.requires("audittrail-client"),
}))
"""


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_pip_install_in_fresh_venv(tmp_path, server, world):
    src = tmp_path / "python"
    shutil.copytree(PYTHON_DIR, src, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".venv*", "tests"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(src)], env=env)

    env.update(AT_ENDPOINT=server.public, AT_TOKEN=server.reader_token)
    out = json.loads(run([str(py), "-c", SCRIPT], env=env, cwd=tmp_path).strip().splitlines()[-1])
    assert Path(out["prefix"]).resolve() == env_dir.resolve()
    assert str(Path(out["file"]).resolve()).startswith(str(env_dir.resolve()) + os.sep), "imported from the venv"
    assert out["typed"] is True
    assert out["events"] == 5
    listed = json.loads(run([str(py), "-m", "pip", "list", "--format=json"], env=env))
    names = {p["name"].lower() for p in listed} - {"pip", "setuptools", "wheel"}
    assert names == {"audittrail-client"}, "installs no dependencies"
    assert out["requires"] in (None, [])
