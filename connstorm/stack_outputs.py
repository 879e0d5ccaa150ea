"""The contract between ``deploy/template.yaml`` and ``connstorm live``: its output keys.

``connstorm live --stack-name NAME`` reads the stack's CloudFormation outputs
and finds everything it loads and watches through these keys; the template
declares each of them (``tests/deploy/test_template_outputs.py`` checks it), so
the two cannot drift apart silently. The names are part of the project's
interface (issue 12): scripts and docs rely on them, so never rename one.

Required outputs, declared whatever the parameters:

=================  ==============================================================
``ApiUrl``         the HTTP API's base URL (``https://ID.execute-api.R.amazonaws.com``)
``FunctionName``   the workload function, for the ``AWS/Lambda`` metrics and its logs
``DbInstanceId``   the RDS instance identifier, dimension ``DBInstanceIdentifier``
``ProxyName``      the RDS Proxy's name, dimension ``ProxyName`` of ``AWS/RDS``
``Region``         the stack's region
=================  ==============================================================

Optional outputs (present when the template's parameters create the resource,
or informative only):

``RestApiUrl``
    the REST API's stage URL, only when ``ApiType`` is ``HTTP_AND_REST``
``LogGroupName``
    the workload function's log group (``/aws/lambda/<FunctionName>``)
``ProxyEndpoint``
    the proxy's host name (private)
``DbEndpoint``
    the instance's host name (private)
``SecretArn``
    the Secrets Manager secret of the application role the functions and the
    proxy log in as (the ARN, never the value; the master user's is not an output)
``ProxyLogGroupName``
    RDS Proxy's CloudWatch Logs group, ``/aws/rds/proxy/<ProxyName>``; with
    enhanced logging on it holds every SQL statement and the pinning reasons
``ProxyDebugLogging``
    ``true`` when the stack turned RDS Proxy's enhanced logging (``DebugLogging``)
    on, else ``false``: whether ``ProxyLogGroupName`` has statements to audit
``SchemaFunctionName``
    the one-shot function that installs the schema and seed rows
``ConnectMode``
    ``proxy`` or ``direct``: where the workload function connects
"""

from __future__ import annotations

#: Outputs ``connstorm live`` cannot run without.
REQUIRED_OUTPUTS: tuple[str, ...] = ("ApiUrl", "FunctionName", "DbInstanceId", "ProxyName",
                                     "Region")

#: Outputs read when present (a REST API, log and endpoint details).
OPTIONAL_OUTPUTS: tuple[str, ...] = ("RestApiUrl", "LogGroupName", "ProxyEndpoint",
                                     "DbEndpoint", "SecretArn", "SchemaFunctionName",
                                     "ConnectMode", "ProxyLogGroupName", "ProxyDebugLogging")

#: Every output key of the contract, required first.
ALL_OUTPUTS: tuple[str, ...] = REQUIRED_OUTPUTS + OPTIONAL_OUTPUTS

#: Outputs the template declares only under a condition (the rest always exist).
CONDITIONAL_OUTPUTS: frozenset[str] = frozenset({"RestApiUrl"})


def missing_outputs(outputs: dict[str, str]) -> tuple[str, ...]:
    """The required keys absent from ``outputs`` (``OutputKey -> OutputValue``), in order."""
    return tuple(key for key in REQUIRED_OUTPUTS if not outputs.get(key))
