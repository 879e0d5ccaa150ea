"""psycopg 3 with prepare_threshold=None: no server-side prepared statements."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('psycopg',)
