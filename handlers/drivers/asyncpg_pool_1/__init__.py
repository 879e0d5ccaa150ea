"""asyncpg through create_pool(min_size=1, max_size=1), its reset on release included."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('asyncpg',)
