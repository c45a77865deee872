"""The Python snippets of python/README.md run, in order, against the real
server (with its URLs and tokens in place of the placeholders)."""

from __future__ import annotations

import re

from _oracle import rec_of
from conftest import PYTHON_DIR


def test_readme_snippets_run(server, world, capsys):
    text = (PYTHON_DIR / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        code = (block.replace("http://127.0.0.1:8080", server.public)
                .replace("http://127.0.0.1:8081", server.internal)
                .replace("<reader token>", server.reader_token)
                .replace("<producer token>", server.producer_token)
                .replace("<data-dir>", str(server.data_dir)))
        exec(compile(code, "README.md", "exec"), namespace)
    created = [namespace["created"], *namespace["batch"].events]
    for e in created:  # keep the oracle of the other tests right
        world.add(rec_of(e))
    out = capsys.readouterr().out
    assert "400 (Bad Request): filter.action_regex is not a valid RE2 regular expression" in out
    assert namespace["batch"].failed_requests == {}
    assert namespace["response"].next_page_token == ""
