"""The workload every handler pattern shares: schema, events, routes, DB settings.

Only the standard library, psycopg, psycopg_pool and boto3 are imported here and
in the handlers, because ``handlers/`` is deployed to AWS as it is, without
connstorm. Each module is imported lazily by the handler that needs it, so a
handler's Init Duration measures only what that pattern really loads.
"""
