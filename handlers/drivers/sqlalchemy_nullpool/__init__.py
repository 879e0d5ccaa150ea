"""SQLAlchemy 2 over psycopg 3 with NullPool: a connection per request."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('sqlalchemy', 'psycopg')
