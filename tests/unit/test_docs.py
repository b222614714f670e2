"""The documentation site (mkdocs.yml, docs/) builds with warnings as errors, as `make docs`
builds it: a page missing from the navigation, a link to a page or an anchor that does not
exist, a broken image fail this test (and so CI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT

DOCS = ROOT / "docs"


def _nav_pages() -> list[str]:
    """The pages mkdocs.yml's nav lists, in order (``- Title: page.md``)."""
    text = (ROOT / "mkdocs.yml").read_text()
    return re.findall(r"^\s+- [^:\n]+: (\S+\.md)$", text, re.M)


def test_make_docs_builds_the_site_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    venv = Path(sys.prefix)  # the virtual environment running the tests
    # -o: the install stamp counts as up to date (this test installs nothing)
    command = ["make", "--no-print-directory", "-o", f"{venv}/.installed", "docs"]
    done = subprocess.run(
        [*command, f"VENV={venv}", f"SITE_DIR={site}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "--strict" in done.stdout  # the command make ran
    assert "WARNING" not in done.stderr
    for page in _nav_pages():
        built = site / ("index.html" if page == "index.md" else page[:-3] + "/index.html")
        assert built.is_file(), f"{page}: not built ({built})"
    assert (site / "benchmarks" / "scale.png").is_file()  # the benchmarks page's chart


def test_every_page_is_in_the_navigation() -> None:
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert sorted(_nav_pages()) == pages


def test_the_configuration_table_sits_between_its_markers() -> None:
    """The block `make config-table` generates (tests/unit/test_config.py checks that it is
    the generated one): one BEGIN, one END, tables between them."""
    text = (DOCS / "configuration.md").read_text()
    assert text.count("<!-- BEGIN config-table -->") == 1
    assert text.count("<!-- END config-table -->") == 1
    block = text.split("<!-- BEGIN config-table -->\n")[1].split("<!-- END config-table -->")[0]
    rows = [row for row in block.splitlines() if row.startswith("|")]
    assert rows[0].startswith("| Variable | ")
    assert all(row.endswith("|") for row in rows)
