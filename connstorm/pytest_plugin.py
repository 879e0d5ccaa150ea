"""pytest plugin registered as ``connstorm``: fixtures for users' own test suites.

The fixtures (a session-scoped throwaway stack) are added by the containers
issue; the module exists so the entry point always resolves.
"""
