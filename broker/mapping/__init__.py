"""The mapping language (YAML: HL7 path -> DICOM keyword, transforms, tables) and the engine
that turns a decoded message into worklist changes. Pure: no sockets, no Redis."""
