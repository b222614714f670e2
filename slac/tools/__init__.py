"""Tools around SLAC frames: pcap/pcapng files (:mod:`slac.tools.pcap`), kernel-timestamped
capture from an interface (:mod:`slac.tools.capture`, ``slac capture``) and the analyser of
captures against ISO 15118-3 (:mod:`slac.tools.analyze`, ``slac analyze``)."""
