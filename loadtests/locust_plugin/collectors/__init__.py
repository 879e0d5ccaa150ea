"""Collectors: small classes that sample one target per interval into ``samples.jsonl``.

Import the modules themselves
(``connstorm.loadtests.locust_plugin.collectors.postgres``): this package
imports nothing, so that importing it never pulls psycopg in before gevent has
patched the standard library (see ``loadtests/locust_plugin/plugin.py``).
"""
