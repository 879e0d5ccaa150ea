"""The command line: ``connstorm``, its commands, the pytest plugin and the container entry.

The top layer: it may import every other package; nothing imports it back
(``tests/connstorm/test_layering.py``).
"""
