"""The application around the library: the ``slac`` command (:mod:`slac.app.cli`), every
EVSE of a station in one process (:mod:`slac.app.service`, ``slac evse``), the MQTT bridge
(:mod:`slac.app.mqtt`), EVerest's SLAC API (:mod:`slac.app.everest`, ``slac evse
--everest``), the station file (:mod:`slac.app.station`) and log set-up
(:mod:`slac.app.logs`). Firmware that embeds the library uses ``slac`` directly and needs
none of this."""
