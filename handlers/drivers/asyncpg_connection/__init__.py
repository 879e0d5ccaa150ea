"""asyncpg, one connection with its defaults (statement cache of 100)."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('asyncpg',)
