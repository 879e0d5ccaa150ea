"""psycopg 3 with its defaults (autocommit off, prepare_threshold=5)."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('psycopg',)
