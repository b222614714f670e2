"""Re-create poetry.lock where the package index serves only pip's simple API.

Poetry's default PyPI source needs the JSON API. This script:

1. asks pip, at run time, which index it uses (nothing about it is written to a file that
   stays);
2. adds that index to pyproject.toml as a temporary primary legacy source and runs
   ``poetry lock``;
3. restores pyproject.toml, strips the temporary source from every package of the lock, and
   rewrites the lock's content-hash with Poetry's own API, so that ``poetry check --lock``
   passes and ``poetry install`` works on any machine with the normal PyPI source.

Run it with the Python that has Poetry installed: ``make lock``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_NAME = "lock-time-pip-index"


def pip_index_url() -> str:
    """The index pip uses here: its configured index-url, else pip's built-in default."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            return value.strip().strip("'\"")
    import os

    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    from pip._internal.models.index import PyPI  # pip's own default

    return str(PyPI.simple_url)


def strip_source(lock_text: str) -> str:
    """Remove the [package.source] tables that name the temporary source."""
    pattern = re.compile(
        r"\n\[package\.source\]\n(?:[a-z_]+ = .*\n)*?reference = \""
        + re.escape(SOURCE_NAME)
        + r"\"\n",
    )
    text, _count = pattern.subn("\n", lock_text)
    # the removal leaves a blank line doubled where the table stood
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text


def main() -> int:
    pyproject = ROOT / "pyproject.toml"
    lock = ROOT / "poetry.lock"
    original = pyproject.read_text()
    url = pip_index_url()
    poetry = [sys.executable, "-m", "poetry"]
    try:
        subprocess.run(
            [*poetry, "source", "add", "--priority=primary", SOURCE_NAME, url], cwd=ROOT, check=True
        )
        subprocess.run([*poetry, "lock", *sys.argv[1:]], cwd=ROOT, check=True)
    finally:
        pyproject.write_text(original)
    text = strip_source(lock.read_text())
    if SOURCE_NAME in text or url in text:
        print("lock.py: the temporary source is still in poetry.lock", file=sys.stderr)
        return 1
    lock.write_text(text)

    from poetry.factory import Factory  # type: ignore[import-not-found,unused-ignore]

    content_hash = Factory().create_poetry(ROOT).locker._get_content_hash()
    text = re.sub(r'content-hash = "[0-9a-f]+"', f'content-hash = "{content_hash}"', text)
    lock.write_text(text)
    subprocess.run([*poetry, "check", "--lock"], cwd=ROOT, check=True)
    print("poetry.lock written; content-hash", content_hash)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
