"""The application: the use cases every face calls (HL7 intake, preview, reprocess, mapping
publish and rollback, worklist search, explain, purge, import), built once by ``broker.app``
(``broker.services.application``). Services return values and raise errors; they import no
face and never print."""
