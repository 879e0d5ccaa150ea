"""A local RDS Proxy: multiplexes at transaction boundaries and pins as RDS Proxy does.

PgBouncer in transaction mode never pins: it hands one client's ``SET`` to the
next client, so a handler that would pin (and exhaust the database) behind RDS
Proxy passes locally. This stand-in behaves like RDS Proxy instead: see
:mod:`.proxy` (the resource), :mod:`.session` (multiplexing), :mod:`.statements`
(named prepared statements, multiplexed), :mod:`.pinning` (what pins, and the
reasons logged), :mod:`.pool` (the bounded pool),
:mod:`.auth` (SCRAM or IAM clients) and :mod:`.metrics` (the metrics endpoint).
Import each name from the module that defines it (``from
connstorm.local_stack.rds_proxy.proxy import RdsProxy``): this ``__init__``
imports nothing, so no module here reads the package in a circle.
"""
