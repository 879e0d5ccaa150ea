"""pg8000's native API (its README's first), with its defaults."""

#: Modules this folder imports besides the standard library and the workload.
IMPORTS = ('pg8000',)
