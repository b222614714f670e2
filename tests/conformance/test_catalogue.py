"""The conformance suites against the catalogue and docs/conformance.md (no root needed).

Every case of the catalogue that applies has exactly one test named after its TC id, no
test exists for a case that does not apply (unless only the SUT's declared PIXIT deselects
it), and the conformance page's tables list every case once, with its applicability.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .catalogue import CASES, EVCC_CASES, SECC_CASES
from .testsystem import templates as tpl
from .testsystem.port import BROADCAST

HERE = Path(__file__).resolve().parent
#: the conformance page of the documentation site (its tables: one row per case)
PAGE = HERE.parent.parent / "docs" / "conformance.md"


def _tests_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.name[len("test_") :]
        for node in tree.body
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_TC_")
    ]


def test_every_applicable_case_has_one_test_named_by_its_tc_id() -> None:
    for role, cases, module in (
        ("SECC", SECC_CASES, HERE / "test_secc.py"),
        ("EVCC", EVCC_CASES, HERE / "test_evcc.py"),
    ):
        tests = _tests_in(module)
        assert len(tests) == len(set(tests)), f"{role}: a TC id has two tests"
        wanted = {c.tc for c in cases if c.applies or c.by_pixit}
        assert set(tests) == wanted, (
            f"{role}: tests without an applicable case: {sorted(set(tests) - wanted)}; "
            f"applicable cases without a test: {sorted(wanted - set(tests))}"
        )


def test_catalogue_ids_are_unique_and_well_formed() -> None:
    ids = [c.tc for c in SECC_CASES + EVCC_CASES]
    assert len(ids) == len(set(ids)) == len(CASES)
    pattern = re.compile(r"^TC_(SECC|EVCC)_(CMN|AC|DC)_VTB_[A-Za-z]+_\d{3}$")
    assert all(pattern.match(tc) for tc in ids), [tc for tc in ids if not pattern.match(tc)]
    assert all(c.role == "SECC" for c in SECC_CASES)
    assert all(c.role == "EVCC" for c in EVCC_CASES)
    # the catalogue's 78 SECC and 96 EVCC test cases (src/testcase/tc_*.cpp)
    assert (len(SECC_CASES), len(EVCC_CASES)) == (78, 96)


def _page_rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in PAGE.read_text().splitlines():
        match = re.match(r"\| `(TC_[A-Za-z0-9_]+)` \|(.*)\|(.*)\|$", line)
        if match:
            assert match.group(1) not in rows, f"docs/conformance.md lists {match.group(1)} twice"
            rows[match.group(1)] = match.group(3).strip()
    return rows


def test_the_conformance_page_lists_every_case_with_its_applicability() -> None:
    rows = _page_rows()
    assert set(rows) == set(CASES), (
        f"docs/conformance.md rows missing: {sorted(set(CASES) - set(rows))}; "
        f"unknown: {sorted(set(rows) - set(CASES))}"
    )
    for tc, verdict in rows.items():
        case = CASES[tc]
        if case.applies:
            assert verdict.startswith(("pass", "fail")), f"{tc}: applies, the page says {verdict}"
        else:
            assert verdict.startswith("not applicable"), f"{tc}: the page says {verdict}"


def test_the_test_systems_nid_derivation_matches_the_reference_vectors() -> None:
    """HomePlugAV / HomePlugAV0123 (wire-format reference, section 4)."""
    nmk = bytes.fromhex("50D3E4933F855B7040784DF815AA8DB7")
    assert tpl.nid_from_nmk(nmk) == bytes.fromhex("B0F2E695666B03")
    assert tpl.nid_from_nmk(nmk, 1) == bytes.fromhex("B0F2E695666B13")
    nmk = bytes.fromhex("B59319D7E8157BA001B018669CCEE30D")
    assert tpl.nid_from_nmk(nmk) == bytes.fromhex("026BCBA5354E08")


def test_raw_edits_change_exactly_the_named_bytes() -> None:
    ind = tpl.atten_char_ind(tpl.ZERO_MAC, bytes(8), 10, tpl.flat_profile(30))
    frame = ind.to_frame(BROADCAST, tpl.ZERO_MAC)
    assert frame[tpl.ATTEN_CHAR_IND_NUM_GROUPS] == 58
    edited = tpl.patch(frame, tpl.ATTEN_CHAR_IND_NUM_GROUPS, b"\x00")
    assert edited[tpl.ATTEN_CHAR_IND_NUM_GROUPS] == 0
    assert [i for i in range(len(frame)) if frame[i] != edited[i]] == [70]
    amp = tpl.amp_map_req().to_frame(BROADCAST, tpl.ZERO_MAC)
    assert int.from_bytes(amp[19:21], "little") == 917
