"""psycopg2 with its defaults (autocommit off; parameters interpolated client-side)."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('psycopg2',)
