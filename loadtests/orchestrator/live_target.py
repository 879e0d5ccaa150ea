"""What ``connstorm live`` loads and watches: the deployed stack's outputs, checked.

Resolution order: explicit options (``--api-url``, ``--function``,
``--db-instance``, ``--proxy``) win; the rest comes from the CloudFormation
stack's outputs (``connstorm.stack_outputs``) when ``--stack-name`` (or ``[live]
stack_name``) is given. boto3's own chain supplies credentials (profiles,
environment, SSO) and endpoints (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_CLOUDFORMATION``, ...), so nothing here handles a secret and
the tests point it at moto on loopback without any connstorm-specific setting.

Every failure the user can fix is one :class:`~connstorm.errors.ConnstormError`
line with its own exit code, raised before any load is sent.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from connstorm.errors import (
    LiveApiError,
    LiveCredentialsError,
    LiveOutputError,
    LiveRegionError,
    LiveStackError,
)
from connstorm.loadtests.orchestrator.cloudwatch import CREDENTIAL_ERROR_CODES
from connstorm.loadtests.orchestrator.cloudwatch_metrics import Targets, api_id_of
from connstorm.loadtests.orchestrator.proxy_logs import log_group
from connstorm.stack_outputs import REQUIRED_OUTPUTS, missing_outputs


@dataclass(frozen=True)
class LiveTarget:
    """The resources of one live run; no credentials in here."""

    api_url: str
    region: str
    function_name: str | None = None
    db_instance_id: str | None = None
    proxy_name: str | None = None
    stack_name: str | None = None
    log_groups: tuple[str, ...] = ()
    connect_mode: str | None = None

    @property
    def proxy_log_group(self) -> str | None:
        """RDS Proxy's CloudWatch Logs group (its pins, with enhanced logging on), or None."""
        return log_group(self.proxy_name) if self.proxy_name else None

    def targets(self) -> Targets:
        """The CloudWatch dimensions of these resources."""
        return Targets(function_name=self.function_name, db_instance_id=self.db_instance_id,
                       proxy_name=self.proxy_name, api_id=api_id_of(self.api_url))

    def as_json(self) -> dict[str, Any]:
        """For ``stack.json``: names and URLs only."""
        return {"stack_name": self.stack_name, "region": self.region, "api_url": self.api_url,
                "function_name": self.function_name, "db_instance_id": self.db_instance_id,
                "proxy_name": self.proxy_name, "log_groups": list(self.log_groups),
                "proxy_log_group": self.proxy_log_group,
                "connect_mode": self.connect_mode}


def session(region: str | None) -> Any:
    """A boto3 session in ``region`` (or the chain's), checked to have credentials.

    No request is made: an unknown region name is refused from botocore's own
    endpoint data, and missing credentials are found by the chain locally.
    """
    import boto3

    sess = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    name = sess.region_name
    if not name:
        raise LiveRegionError("no AWS region: pass --region R (or set [live] region, "
                              "AWS_REGION or a profile's region)")
    known = set(sess.get_available_regions("cloudformation"))
    for partition in ("aws-cn", "aws-us-gov"):
        known |= set(sess.get_available_regions("cloudformation", partition_name=partition))
    if name not in known:
        raise LiveRegionError(f"--region {name}: not an AWS region CloudFormation knows")
    if sess.get_credentials() is None:
        raise LiveCredentialsError("no AWS credentials found (boto3 chain: environment, "
                                   "~/.aws profiles, SSO); run 'aws sso login' or set a profile")
    return sess


def _client_error(exc: Exception, what: str) -> Exception:
    """Turn a botocore error into the user's one line."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return LiveCredentialsError("no AWS credentials found (boto3 chain)")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
        if code in CREDENTIAL_ERROR_CODES:
            return LiveCredentialsError(f"AWS refused the credentials ({code}) while {what}")
        return LiveStackError(f"{what}: {code}: {message}"[:300])
    return LiveStackError(f"{what}: {' '.join(str(exc).split())}"[:300])


def stack_outputs(sess: Any, stack_name: str) -> dict[str, str]:
    """``OutputKey -> OutputValue`` of a stack; one line when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = sess.client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack_name).get("Stacks") or []
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            raise LiveStackError(f"stack {stack_name!r} not found in region "
                                 f"{sess.region_name} (is --region right?)") from None
        raise _client_error(exc, f"reading stack {stack_name!r}") from None
    except BotoCoreError as exc:
        raise _client_error(exc, f"reading stack {stack_name!r}") from None
    if not stacks:
        raise LiveStackError(f"stack {stack_name!r} not found in region {sess.region_name}")
    return {str(o.get("OutputKey")): str(o.get("OutputValue", ""))
            for o in stacks[0].get("Outputs") or []}


def resolve(sess: Any, *, stack_name: str | None, api_url: str | None = None,
            function_name: str | None = None, db_instance_id: str | None = None,
            proxy_name: str | None = None) -> LiveTarget:
    """The :class:`LiveTarget` from the stack's outputs and the explicit options."""
    outputs: dict[str, str] = {}
    if stack_name:
        outputs = stack_outputs(sess, stack_name)
        given = {"ApiUrl": api_url, "FunctionName": function_name,
                 "DbInstanceId": db_instance_id, "ProxyName": proxy_name,
                 "Region": sess.region_name}
        missing = missing_outputs({**outputs, **{k: v for k, v in given.items()
                                                 if v and k != "Region"}})
        if "Region" not in missing and not outputs.get("Region"):
            missing = (*missing, "Region")
        if missing:
            raise LiveOutputError(f"stack {stack_name!r} has no output {', '.join(missing)} "
                                  f"(connstorm live reads {', '.join(REQUIRED_OUTPUTS)}; "
                                  "deploy deploy/template.yaml)")
        if outputs["Region"] != sess.region_name:
            raise LiveRegionError(f"stack {stack_name!r} says its region is "
                                  f"{outputs['Region']}, not {sess.region_name}: "
                                  f"use --region {outputs['Region']}")
    elif not api_url:
        raise LiveOutputError("nothing to load: give --stack-name NAME (or [live] "
                              "stack_name), or --api-url URL")
    url = (api_url or outputs.get("ApiUrl") or "").rstrip("/")
    function = function_name or outputs.get("FunctionName") or None
    groups = tuple(g for g in (outputs.get("LogGroupName")
                               or (f"/aws/lambda/{function}" if function else ""),) if g)
    return LiveTarget(api_url=url, region=str(sess.region_name), function_name=function,
                      db_instance_id=db_instance_id or outputs.get("DbInstanceId") or None,
                      proxy_name=proxy_name or outputs.get("ProxyName") or None,
                      stack_name=stack_name, log_groups=groups,
                      connect_mode=outputs.get("ConnectMode") or None)


def check_api_answers(url: str, timeout_s: float = 10.0) -> int:
    """One GET of the API's base URL; any HTTP status counts as answering.

    A refused connection, a name that does not resolve or a timeout is
    :class:`~connstorm.errors.LiveApiError`, before any load is sent.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LiveApiError(f"API {url} does not answer: {' '.join(str(reason).split())}"
                           [:300]) from None
