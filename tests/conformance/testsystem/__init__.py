"""The project's ISO 15118-5 SLAC test system (SECC and EVCC), black-box over veth.

- :mod:`.timers`: the catalogue's timer and PIXIT values, and what this project declares;
- :mod:`.port`: the raw socket in the tester's namespace, stations, kernel timestamps;
- :mod:`.templates`: messages to send (valid and invalid) and receive templates;
- :mod:`.verdict`: verdicts with the catalogue's words and the frames that crossed the wire;
- :mod:`.secc` / :mod:`.evcc`: the two test systems, with the catalogue's preconditions and
  test behaviours as methods.
"""
