"""Module state that survives warm invocations; reports who ran it."""

import os
import time

COUNT = 0
LOADED_AT = time.time()


def lambda_handler(event, context):
    global COUNT
    COUNT += 1
    if isinstance(event, dict) and event.get("sleep_s"):
        time.sleep(float(event["sleep_s"]))
    if isinstance(event, dict) and event.get("print"):
        print(event["print"])
    return {
        "count": COUNT,
        "pid": os.getpid(),
        "log_stream": context.log_stream_name,
        "function_name": context.function_name,
        "memory_mb": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "runtime_api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
        "env": {k: os.environ.get(k) for k in (
            "_HANDLER", "AWS_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_LOG_GROUP_NAME", "LAMBDA_TASK_ROOT", "TZ", "FIXTURE_VAR",
            "AWS_LAMBDA_MAX_CONCURRENCY")},
        "cwd": os.getcwd(),
        "client_custom": getattr(context.client_context, "custom", None),
        "function_arn": context.invoked_function_arn,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
    }
