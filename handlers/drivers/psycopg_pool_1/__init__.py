"""psycopg 3 through a psycopg_pool ConnectionPool of one connection."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('psycopg', 'psycopg_pool')
