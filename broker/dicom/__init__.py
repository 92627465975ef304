"""The DICOM face: pynetdicom server, C-FIND and MPPS handlers, connection guard, scanner
profiles; the matching rules, query plans and answers are pure modules of their own
(``matching``, ``wildcard``, ``plan``, ``answers``, ``response``, ``timezone``, ``status``)."""
