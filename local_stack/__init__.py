"""The local stack: PostgreSQL and PgBouncer as managed processes, and the Lambda emulator.

Every server here is a context manager that waits for readiness, stops
deterministically, and dies with the toolkit (see ``connstorm.local_stack.process``).
"""
