"""The Lambda emulator: execution environments running the real awslambdaric.

Each environment is its own OS process, one request at a time, frozen between
invocations, reaped when idle, throttled at its concurrency limit, as
``../shared/guide/lambda.md`` describes. The API Gateway front and the Invoke
API sit on one aiohttp server in front of it.
"""
