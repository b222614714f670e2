"""Every command the README or a page of docs/ shows is run somewhere: by a named test (which
must exist and run that command) or by .ci/run. A command added to the README or the docs
without a place here fails this test; so does a place that no longer runs it. The Messages
example is run as written. The README's links lead to files that exist, and its anchors to
headings that exist (the pages' own links and anchors: mkdocs build --strict,
tests/unit/test_docs.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ..conftest import ROOT

README = ROOT / "README.md"
#: every Markdown file whose commands count: the README and the site's pages
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]

#: command shown in the README or docs/*.md -> (where it runs, a token that place's source
#: must contain)
COVERAGE: dict[str, tuple[str, str]] = {
    "make demo": (
        "tests/integration/test_tools.py::test_make_demo_matches_and_shows_ipv6_then_cleans_up",
        '"demo"',
    ),
    "make tests": (".ci/run", "make tests"),
    "make test-unit": (".ci/run", "make test-unit"),
    # .ci/run's `make tests` runs it beside the suite
    "make conformance": ("Makefile", "$(MAKE) --no-print-directory conformance"),
    "make install-local": (".ci/run", "make install-local"),
    "make lint": (".ci/run", "make lint"),
    "sudo .venv/bin/slac evse --config cs_configuration.json": (
        "tests/integration/operator.py::EvseCommand",
        '"evse"',
    ),
    "sudo .venv/bin/slac evse --config cs_configuration.json --cp mqtt://localhost:1883/station1": (
        "tests/integration/test_mqtt.py::mqtt_station",
        '"--cp"',
    ),
    "sudo .venv/bin/slac evse --config cs_configuration.json --everest mqtt://localhost:1883/everest_api/1/slac": (  # noqa: E501
        "tests/integration/test_everest.py::test_slac_evse_everest_command",
        '"--everest"',
    ),
    "mosquitto_pub -h localhost -t 'station1/DE*SWT*E123456789/cp_state' -m B": (
        "tests/integration/test_mqtt.py::test_publishing_b_leads_to_a_retained_matched",
        '"mosquitto_pub"',
    ),
    "mosquitto_pub -h localhost -t 'station1/DE*SWT*E123456789/dlink' -m terminate": (
        "tests/integration/test_mqtt.py::test_dlink_over_mqtt_and_the_retained_stats_topic",
        '"mosquitto_pub"',
    ),
    "mosquitto_sub -h localhost -t 'station1/+/stats' -v": (
        "tests/integration/test_mqtt.py::test_dlink_over_mqtt_and_the_retained_stats_topic",
        '"site1/+/stats"',
    ),
    "mosquitto_sub -h localhost -t 'station1/+/slac' -v": (
        "tests/integration/test_mqtt.py::test_publishing_b_leads_to_a_retained_matched",
        '"mosquitto_sub"',
    ),
    "sudo .venv/bin/slac capture --iface eth1 -w slac.pcap": (
        "tests/integration/test_operator.py::test_slac_evse_stdin_json_logs_and_pcap_read_by_tshark",
        '"capture"',
    ),
    ".venv/bin/slac analyze slac.pcap": (
        "tests/integration/test_operator.py::test_slac_evse_stdin_json_logs_and_pcap_read_by_tshark",
        '"analyze"',
    ),
    "slac evse --config cs_configuration.json [--env .env] [--cp stdin|mqtt://HOST:PORT/PREFIX | --everest mqtt://HOST:PORT/PREFIX] [--pcap FILE]": (  # noqa: E501
        "tests/integration/test_operator.py::test_slac_evse_stdin_json_logs_and_pcap_read_by_tshark",
        '"--env"',
    ),
    "slac capture --iface IFACE -w FILE.pcap [--count N] [--duration S]": (
        "tests/integration/test_operator.py::test_slac_evse_stdin_json_logs_and_pcap_read_by_tshark",
        '"-w"',
    ),
    "slac config [--update FILE...]": (
        "tests/unit/test_config.py::test_slac_config_update_without_markers_is_an_error",
        '"--update"',
    ),
    "slac analyze FILE [--json] [--plot out.png] [--strict]": (
        "tests/unit/test_captures.py::test_slac_analyze_command_text_json_and_plot",
        '"--plot"',
    ),
    "slac ev --iface IFACE [--env .env] [--timeout 30]": (
        "tests/integration/test_operator.py::test_slac_ev_matches_a_running_evse_and_reports_it",
        '"--timeout"',
    ),
    "slac powerline -- --evs 1 --evses 1 [--crosstalk 50]": (
        "tests/integration/test_tools.py::POWERLINE_COMMANDS",
        '"powerline",\n            "--"',
    ),
    "slac doctor [--iface IF | --config cs_configuration.json] [--json] [--with-ev]": (
        "tests/integration/test_doctor.py::test_slac_doctor_iface_json_exit_0_for_a_healthy_modem",
        '"doctor"',
    ),
    "sudo .venv/bin/slac doctor --config cs_configuration.json": (
        "tests/integration/test_doctor.py::test_slac_doctor_config_text_exit_1_names_the_finding_and_what_to_do",
        '"--config"',
    ),
    "sudo .venv/bin/slac doctor --iface eth1 --json": (
        "tests/integration/test_doctor.py::test_slac_doctor_iface_json_exit_0_for_a_healthy_modem",
        '"--json"',
    ),
    "sudo .venv/bin/slac doctor --iface eth1 --with-ev": (
        "tests/integration/test_doctor.py::test_slac_doctor_with_ev_passes_when_our_ev_sounds",
        '"--with-ev"',
    ),
    "sudo .venv/bin/slac powerline -- --evse-role ev --set-key-result 0": (
        "tests/integration/test_doctor.py::test_slac_doctor_finds_the_modems_the_powerline_command_breaks",
        '"--evse-role"',
    ),
    "sudo ip netns exec slacevse1212x1 .venv/bin/slac doctor --iface evse0": (
        "tests/integration/test_doctor.py::test_slac_doctor_finds_the_modems_the_powerline_command_breaks",
        "netns=namespace",
    ),
    "make powerline": ("tests/integration/test_tools.py::POWERLINE_COMMANDS", '"make powerline"'),
    ".venv/bin/python -m slac.testing.powerline --evs 3 --evses 3 --crosstalk 50 --loss CM_MNBC_SOUND.IND=0.3 --delay 2": (  # noqa: E501
        "tests/integration/test_tools.py::POWERLINE_COMMANDS",
        '"CM_MNBC_SOUND.IND=0.3"',
    ),
    "sudo make run-ev-slac EV_IFACE=veth1": (
        "tests/integration/test_tools.py::test_scapy_ev_passes_directly_against_the_evse_example",
        '"run-ev-slac"',
    ),
    ".venv/bin/slac analyze my-session.pcapng": (
        "tests/unit/test_captures.py::test_slac_analyze_command_text_json_and_plot",
        '"analyze"',
    ),
    ".venv/bin/slac analyze my-session.pcapng --json": (
        "tests/unit/test_captures.py::test_slac_analyze_command_text_json_and_plot",
        '"--json"',
    ),
    ".venv/bin/slac analyze my-session.pcapng --plot seq.png --strict": (
        "tests/unit/test_captures.py::test_slac_analyze_strict_exit_code",
        '"--strict"',
    ),
    "make run-local-single": (
        "tests/integration/test_examples.py::test_single_session_example_matches",
        '"run-local-single"',
    ),
    "make run-local-multiple": (
        "tests/integration/test_examples.py::test_multiple_sessions_example_matches_every_evse",
        '"run-local-multiple"',
    ),
    "make run-local-sudo-single": (
        "tests/integration/test_examples.py::test_single_session_example_matches",
        '"run-local-sudo-single"',
    ),
    "make run-local-sudo-multiple": (
        "tests/integration/test_examples.py::test_multiple_sessions_example_matches_every_evse",
        '"run-local-sudo-multiple"',
    ),
    # Docker, for real (tests/integration/test_docker.py): the engine, the base, the image, and the
    # container matching our EV through docker run, make dev and make run
    "make build": ("tests/integration/test_docker.py::image", '"build"'),
    "make dev": (
        "tests/integration/test_docker.py::test_make_dev_builds_runs_and_matches_with_the_cp_typed_into_docker_attach",
        '"dev"',
    ),
    "make run": (
        "tests/integration/test_docker.py::test_make_run_detached_takes_the_cp_over_mqtt_and_publishes_the_match",
        '"run"',
    ),
    "make build BASE_IMAGE=slac-base:bookworm": (
        "tests/integration/test_docker.py::image",
        "BASE_IMAGE=",
    ),
    "make dev BASE_IMAGE=slac-base:bookworm": (
        "tests/integration/test_docker.py::test_make_dev_builds_runs_and_matches_with_the_cp_typed_into_docker_attach",
        "BASE_IMAGE=",
    ),
    "make run BASE_IMAGE=slac-base:bookworm": (
        "tests/integration/test_docker.py::test_make_run_detached_takes_the_cp_over_mqtt_and_publishes_the_match",
        "BASE_IMAGE=",
    ),
    'docker run -i --rm --network host --cap-drop ALL --cap-add NET_RAW --read-only -v "$PWD/cs_configuration.json:/app/cs_configuration.json:ro" slac': (  # noqa: E501
        "tests/integration/test_docker.py::test_docker_run_matches_our_ev_through_the_virtual_powerline_then_stops_on_sigterm",
        '"--read-only"',
    ),
    "scripts/dockerd.sh start": ("tests/integration/test_docker.py::engine", '[DOCKERD, "start"]'),
    "scripts/dockerd.sh stop": ("tests/integration/test_docker.py::engine", '[DOCKERD, "stop"]'),
    "export DOCKER_HOST=unix:///run/slac-dockerd/docker.sock": (
        "tests/integration/test_docker.py::test_dockerd_starts_answers_and_stops_leaving_nothing_behind",
        'f"unix://{run}/docker.sock"',
    ),
    "scripts/docker-base.sh": (
        "tests/integration/test_docker.py::base_image",
        "[DOCKER_BASE, DEFAULT_BASE]",
    ),
    "make bench": (
        "tests/integration/test_benchmarks.py::test_make_bench_writes_table_json_and_chart",
        '"bench"',
    ),
    ".venv/bin/python benchmarks/carpark.py --set atten_char_first_resend=0.015 --set atten_char_delay_per_db=0.006": (  # noqa: E501
        "tests/unit/test_carpark.py::test_car_park_benchmark_takes_evse_settings",
        '"atten_char_first_resend=0.015"',
    ),
    ".venv/bin/python benchmarks/carpark.py": (
        "tests/unit/test_carpark.py::test_car_park_benchmark_runs_quickly_and_writes_its_figures",
        '"benchmarks/carpark.py"',
    ),
    "make lock": (
        "tests/integration/test_install.py::test_make_lock_recreates_a_lock_that_poetry_accepts",
        '"lock"',
    ),
    "make help": ("tests/unit/test_packaging.py::test_make_help_lists_every_target", '"help"'),
    "make docs": ("tests/unit/test_docs.py::test_make_docs_builds_the_site_strictly", '"docs"'),
    "apt-get install default-jre-headless": (".ci/run", "default-jre-headless"),
    "sudo .venv/bin/python examples/iso15118_station.py --config cs_configuration.json --env .env": (  # noqa: E501
        "slac/testing/hlc.py::HlcSite",
        'str(STATION), "--config"',
    ),
    "make demo-hlc": (
        "tests/integration/test_hlc.py::test_make_demo_hlc_runs_a_session_to_session_stop_and_prints_the_figures",
        '"demo-hlc"',
    ),
}


def shown_commands(path: Path) -> set[str]:
    """The commands of a Markdown file's ```sh blocks (comments and line continuations
    removed; indented blocks in lists count too)."""
    commands: set[str] = set()
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.split("  #")[0].rstrip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pending = f"{pending} {line.strip()}" if pending else line.strip()
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip()
                continue
            commands.add(pending)
            pending = ""
    return commands


def _source_of(place: str) -> str:
    path, _, name = place.partition("::")
    text = (ROOT / path).read_text()
    if not name:
        return text
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        defined = (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.name == name
        )
        assigned = isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        )
        if defined or assigned:
            assert isinstance(node, ast.stmt)
            decorators = getattr(node, "decorator_list", [])
            start = min([node.lineno] + [d.lineno for d in decorators])
            return "\n".join(lines[start - 1 : node.end_lineno])
    raise AssertionError(f"{place}: no {name} in {path}")


def all_shown_commands() -> dict[str, list[str]]:
    """Every command shown, with the files that show it."""
    shown: dict[str, list[str]] = {}
    for path in DOCUMENTS:
        for command in shown_commands(path):
            shown.setdefault(command, []).append(str(path.relative_to(ROOT)))
    return shown


def test_every_shown_command_has_a_place_that_runs_it() -> None:
    shown = all_shown_commands()
    missing = {c: shown[c] for c in sorted(set(shown) - set(COVERAGE))}
    stale = sorted(set(COVERAGE) - set(shown))
    assert not missing, f"commands run nowhere (command: where shown): {missing}"
    assert not stale, f"places for commands neither the README nor docs/ shows: {stale}"


def test_the_pages_show_commands() -> None:
    """The scan sees the pages' blocks (a changed fence would hide them all)."""
    shown = all_shown_commands()
    assert "docs/operator-guide.md" in shown["make dev"]
    assert "docs/development.md" in shown["make docs"]
    assert "README.md" in shown["make demo"]


def test_every_place_exists_and_runs_its_command() -> None:
    for command, (place, token) in COVERAGE.items():
        source = _source_of(place)
        assert token in source, f"{command!r}: {place} does not contain {token}"


def test_the_messages_example_runs_as_written(capsys: object) -> None:
    for path in (README, ROOT / "docs" / "api.md"):
        text = path.read_text()
        section = text[text.index("## Messages") :]
        code = re.search(r"```python\n(.*?)```", section, re.S)
        assert code is not None, path
        exec(compile(code.group(1), f"{path.name} (Messages)", "exec"), {})


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # no headings in code
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_the_readmes_links_and_anchors_resolve() -> None:
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, "the README links to the docs"
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # https://..., mailto:
        target, _, anchor = link.partition("#")
        path = README if not target else (ROOT / target)
        assert path.exists(), f"README links to {link}: no such file"
        if anchor:
            assert path.suffix == ".md", link
            assert anchor in anchors(path), f"README links to {link}: no such heading"


def test_the_readme_points_to_every_page() -> None:
    text = README.read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"](docs/{page.name})" in text, page.name
