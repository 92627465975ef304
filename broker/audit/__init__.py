"""The audit trail: who did what to the broker, kept in Redis and, optionally, sent as syslog.

``events`` is the model (what a record holds, which field may hold patient data),
``writer`` puts records in the Redis stream without ever making a caller wait,
``stream`` reads them back for ``mwl-broker audit``, ``atna`` and ``syslog`` turn
them into DICOM PS3.15 A.5 audit messages over RFC 5424 syslog, and ``exporter``
sends the stream to a syslog collector.
"""
