"""The admin face: web console, REST API and DICOMweb (to come)."""
