"""What the four SQLAlchemy configurations share: the engine and the 2.0 idioms."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('sqlalchemy', 'psycopg')
