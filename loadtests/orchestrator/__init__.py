"""The orchestrator around Locust: a run, a repro, a live run, their summaries and
thresholds.

It starts Locust as a child process and never imports Locust itself (gevent
would patch the orchestrator's asyncio-based servers and threads).
"""
