"""What runs inside Locust's process: the locustfile, connstorm's plugin, its web
routes, the collectors and the load shapes.

Locust monkey-patches the process with gevent when it is imported, so nothing
here imports the orchestrator (``connstorm.loadtests.orchestrator``), and the
orchestrator imports nothing here that imports Locust.
"""
