"""The project's ISO 15118-5 SLAC conformance suites (SECC and EVCC)."""
