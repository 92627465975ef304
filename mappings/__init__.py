"""The default mapping files, shipped inside the package as ``broker.default_mappings``.

Read with importlib.resources (``broker.mapping.defaults``); this file only makes the folder
importable in an editable install. Edit the YAML files, not this one.
"""
