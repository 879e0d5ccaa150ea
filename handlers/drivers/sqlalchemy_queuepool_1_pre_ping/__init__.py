"""SQLAlchemy 2 over psycopg 3 with QueuePool(pool_size=1) and pool_pre_ping=True."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('sqlalchemy', 'psycopg')
