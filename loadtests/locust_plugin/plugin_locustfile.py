"""connstorm's plugin for a locustfile of one's own: loaded after it, adds no users.

``[load] locustfile`` / ``--locustfile`` runs Locust with ``-f YOURS.py,<this
file>``: your User classes send the load, while this file brings connstorm's
options, collectors, Connections tab, live chart and failure classification
(:mod:`connstorm.loadtests.locust_plugin.plugin`) and ``ConnstormShape`` for
``--shape``. Locust takes the first shape class it finds, so a shape class of
your own (in your file, which comes first) wins over connstorm's.
"""

from __future__ import annotations

from connstorm.loadtests.locust_plugin import plugin  # noqa: F401  - registers connstorm's options, collectors and UI
from connstorm.loadtests.locust_plugin.shape_class import ConnstormShape

__all__ = ["ConnstormShape"]
