"""Verdicts: a failed case raises with the catalogue's words, what was wrong, and the frames.

The catalogue's verdicts are ``pass``, ``fail`` and ``inconc``; a behaviour run as a
precondition turns its failures into ``inconc``. Here both end the pytest test as failed
(a SUT that cannot reach the test purpose does not pass it), and the message says which it
was. Every failure ends with the frames that crossed the wire, times relative to the start.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

if TYPE_CHECKING:
    from .port import Port, Received
    from .templates import Expect


class Vct(enum.Enum):
    """The verdict a behaviour gives when its check fails (the catalogue's ``v_vct``)."""

    FAIL = "fail"
    INCONC = "inconc"


FAIL = Vct.FAIL
INCONC = Vct.INCONC


class ConformanceFailure(AssertionError):
    """A test case did not pass."""


#: how late (s) the test system may be on its own schedule before a case is inconclusive
#: (``SLAC_CONFORMANCE_SLACK``; a negative value makes every case inconclusive, for tests)
SLACK = float(os.environ.get("SLAC_CONFORMANCE_SLACK", "0.05"))


class TestSystemLate(RuntimeError):
    """The test system missed its own schedule (an overloaded machine): no verdict on the
    SUT can be drawn from this run."""

    __test__ = False  # not a test class, whatever pytest's name patterns say


class Verdict:
    """The verdict of one test case."""

    def __init__(self, tc: str, port: Port, sut_log: Optional[object] = None) -> None:
        self.tc = tc
        self.port = port
        #: something whose str() is the SUT's recent log (diagnostics only)
        self.sut_log = sut_log
        self.passes: list[str] = []

    def report(self) -> str:
        """The passes, the frames and the SUT's log (for SLAC_CONFORMANCE_TRACES)."""
        lines = [f"{self.tc}", "steps passed:"]
        lines.extend(f"  {p}" for p in self.passes)
        lines.append("frames (tester's view):")
        lines.append(self.port.trace(last=400))
        if self.sut_log is not None:
            lines.append("SUT log:")
            lines.extend("  " + line for line in str(self.sut_log).splitlines())
        return "\n".join(lines) + "\n"

    def write_report(self) -> None:
        """With SLAC_CONFORMANCE_TRACES=DIR, the case's report goes to DIR/<TC id>.txt."""
        folder = os.environ.get("SLAC_CONFORMANCE_TRACES")
        if folder:
            path = Path(folder)
            path.mkdir(parents=True, exist_ok=True)
            (path / f"{self.tc}.txt").write_text(self.report())

    def passed(self, message: str) -> None:
        """A ``setverdict(pass, ...)`` of the catalogue: recorded for the report."""
        self.passes.append(message)

    def set(self, vct: Vct, message: str, received: Optional[Received] = None) -> NoReturn:
        """``setverdict(vct, message)``: the case ends here."""
        __tracebackhide__ = True
        kind = (
            "fail" if vct is Vct.FAIL else "precondition not met (the catalogue's verdict: inconc)"
        )
        lines = [f"{self.tc}: {kind}: {message}"]
        if received is not None:
            lines.append(
                f"  the frame: {received.name} from {received.src} to {received.dst}, "
                f"{self.port.since_start(received.at):.3f} s after the start"
            )
        if self.passes:
            lines.append("  steps passed: " + "; ".join(self.passes[-8:]))
        lines.append("  frames (tester's view):")
        lines.append(self.port.trace())
        if self.sut_log is not None:
            text = str(self.sut_log).strip()
            if text:
                lines.append("  SUT log (last lines):")
                lines.extend("    " + line for line in text.splitlines()[-40:])
        raise ConformanceFailure("\n".join(lines))

    def on_time(self, what: str, intended: float, actual: float, slack: float = SLACK) -> None:
        """The tester did ``what`` at ``actual`` instead of ``intended`` (epoch seconds): more
        than ``slack`` late and the case cannot judge the SUT (its timers ran on)."""
        __tracebackhide__ = True
        if actual > intended + slack:
            raise TestSystemLate(
                f"{self.tc}: inconclusive: the test system {what} "
                f"{(actual - intended) * 1000:.0f} ms late (the machine is overloaded); "
                "run the case again\n" + self.port.trace()
            )

    def fail(self, message: str, received: Optional[Received] = None) -> NoReturn:
        __tracebackhide__ = True
        self.set(Vct.FAIL, message, received)

    def unexpected(self, vct: Vct, received: Received, *templates: Expect) -> NoReturn:
        """The catalogue's catch-all ``[] pt_SLAC_Port.receive``: an unexpected message.

        When a template of the same message type was waited for, say which fields differ.
        """
        __tracebackhide__ = True
        reasons = []
        for template in templates:
            if received.message is not None and isinstance(received.message, template.kind):
                reasons.append("; ".join(template.mismatches(received)))
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        self.set(
            vct,
            f"Invalid message type or content was received: {received.name}{detail}",
            received,
        )
