"""connstorm: load-test AWS Lambda functions that talk to PostgreSQL.

The package ties the rest together: the scenario model (:mod:`connstorm.scenario`),
error classification (:mod:`connstorm.error_kinds`) and the command line
(:mod:`connstorm.cli.main`).
"""

__version__ = "0.1.0"
