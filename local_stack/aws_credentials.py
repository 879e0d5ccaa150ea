"""The dummy AWS credentials of the local stack.

Execution environments get them as Lambda gives a function its role's keys, and
the local stand-ins (Secrets Manager, the IAM token verifier) accept exactly
these, so a signature made in an environment can be checked by the stack.
They are AWS's documented example keys: worthless anywhere else.
"""

DUMMY_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DUMMY_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DUMMY_SESSION_TOKEN = "connstorm-local-session-token"
