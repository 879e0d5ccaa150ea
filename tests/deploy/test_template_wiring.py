"""The parameters wire the template as intended: conditions, rules, security groups, settings.

cfn-lint checks that each combination is valid CloudFormation; these tests
check that it is the *intended* one, by evaluating the template's Conditions
and Rules for each combination (:class:`tests.deploy.cfn.Resolved`).
"""

from __future__ import annotations

import ast
import itertools
import re
from typing import Any

import pytest

from connstorm.handlers.workload import schema_function, settings
from tests.deploy.cfn import ROOT, Resolved, load

#: The patterns the template offers (a test checks they are exactly the handlers).
PATTERNS = sorted(load()["Parameters"]["HandlerPattern"]["AllowedValues"])
HANDLER_FILES = sorted(p.name.removesuffix("_handler.py")
                       for p in (ROOT / "handlers").glob("*_handler.py"))
PASSWORD_PATTERNS = {"per_invocation", "leaky", "module_level", "module_level_resilient",
                     "in_process_pool", "session_state"}
PORT = 5432
#: (from group, to group, port) every deployment allows, whatever ConnectMode says.
ALWAYS = {("FunctionSecurityGroup", "ProxySecurityGroup", PORT),
          ("ProxySecurityGroup", "DbSecurityGroup", PORT),
          ("SchemaFunctionSecurityGroup", "DbSecurityGroup", PORT),
          ("FunctionSecurityGroup", "EndpointSecurityGroup", 443),
          ("SchemaFunctionSecurityGroup", "EndpointSecurityGroup", 443)}
DIRECT = ("FunctionSecurityGroup", "DbSecurityGroup", PORT)


class _Any:
    """Equal to anything (a description's wording is not the point)."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


ANY = _Any()


def resolved(**params: str) -> Resolved:
    return Resolved(load(), params)


def env_of(r: Resolved, function: str = "WorkloadFunction") -> dict[str, Any]:
    env = r.resources()[function]["Properties"]["Environment"]["Variables"]
    assert isinstance(env, dict)
    return env


def edges(r: Resolved, kind: str) -> set[tuple[str, str, int]]:
    """Security-group rules of one kind (ingress or egress) as (from, to, port)."""
    out = set()
    for res in r.resources().values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::EC2::SecurityGroupIngress" and kind == "ingress":
            out.add((props["SourceSecurityGroupId"]["Ref"], props["GroupId"]["Ref"],
                     props["FromPort"]))
        if res["Type"] == "AWS::EC2::SecurityGroupEgress" and kind == "egress":
            out.add((props["GroupId"]["Ref"], props["DestinationSecurityGroupId"]["Ref"],
                     props["FromPort"]))
        if res["Type"] in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            assert props["FromPort"] == props["ToPort"]
            assert props["IpProtocol"] == "tcp"
    return out


@pytest.mark.parametrize("mode", ["proxy", "direct"])
def test_security_groups_allow_only_function_proxy_database(mode: str) -> None:
    pattern = "iam_token" if mode == "proxy" else "module_level"
    r = resolved(ConnectMode=mode, HandlerPattern=pattern)
    expected = ALWAYS | ({DIRECT} if mode == "direct" else set())
    # Both sides of every path are open, and nothing else is.
    assert edges(r, "ingress") == expected
    assert edges(r, "egress") == expected
    # No group keeps the default allow-all egress, none has inline ingress.
    for name, res in r.resources().items():
        if res["Type"] == "AWS::EC2::SecurityGroup":
            props = res["Properties"]
            assert props["SecurityGroupEgress"] == [
                {"CidrIp": "127.0.0.1/32", "IpProtocol": "-1", "Description": ANY}], name
            assert "SecurityGroupIngress" not in props, name


def test_three_private_subnets_in_three_zones_used_everywhere() -> None:
    r = resolved()
    res = r.resources()
    subnets = sorted(n for n, v in res.items() if v["Type"] == "AWS::EC2::Subnet")
    assert len(subnets) == 3
    zones = [res[s]["Properties"]["AvailabilityZone"] for s in subnets]
    assert zones == [{"Fn::Select": [i, {"Fn::GetAZs": ""}]} for i in range(3)]
    assert all(res[s]["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets)
    refs = [{"Ref": s} for s in subnets]
    assert res["WorkloadFunction"]["Properties"]["VpcConfig"]["SubnetIds"] == refs
    assert res["SchemaFunction"]["Properties"]["VpcConfig"]["SubnetIds"] == refs
    assert res["Proxy"]["Properties"]["VpcSubnetIds"] == refs
    assert res["DbSubnetGroup"]["Properties"]["SubnetIds"] == refs
    assert res["SecretsManagerEndpoint"]["Properties"]["SubnetIds"] == refs
    assert res["Db"]["Properties"]["PubliclyAccessible"] is False
    # Private: no internet gateway, no NAT, no route but the VPC's own.
    types = {v["Type"] for v in res.values()}
    assert not types & {"AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::Route",
                        "AWS::EC2::EIP"}
    associated = {v["Properties"]["SubnetId"]["Ref"] for v in res.values()
                  if v["Type"] == "AWS::EC2::SubnetRouteTableAssociation"}
    assert associated == set(subnets)


@pytest.mark.parametrize(("mode", "auth", "pattern"),
                         list(itertools.product(["proxy", "direct"], ["REQUIRED", "DISABLED"],
                                                PATTERNS)))
def test_rules_refuse_exactly_the_combinations_that_cannot_log_in(mode: str, auth: str,
                                                                  pattern: str) -> None:
    r = resolved(ConnectMode=mode, ProxyIamAuth=auth, HandlerPattern=pattern)
    iam = pattern == "iam_token"
    can_log_in = mode == "direct" or (auth == "REQUIRED") == iam
    assert (r.failed_rules() == []) == can_log_in


@pytest.mark.parametrize(("mode", "pattern"), [
    (mode, pattern) for mode in ("proxy", "direct") for pattern in PATTERNS])
def test_workload_environment_per_pattern_and_mode(mode: str, pattern: str) -> None:
    auth = "REQUIRED" if pattern == "iam_token" else "DISABLED"
    r = resolved(ConnectMode=mode, HandlerPattern=pattern, ProxyIamAuth=auth)
    env = env_of(r)
    host = {"Fn::GetAtt": ["Proxy", "Endpoint"]} if mode == "proxy" else \
        {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    assert env["DB_HOST"] == host
    assert env["DB_PORT"] == "5432"
    assert env["DB_SSLMODE"] == {"Ref": "DbSslMode"}
    assert ("DB_PASSWORD" in env) == (pattern in PASSWORD_PATTERNS)
    if "DB_PASSWORD" in env:  # a dynamic reference to the app role's secret, never a literal
        assert env["DB_PASSWORD"] == {
            "Fn::Sub": "{{resolve:secretsmanager:${AppSecret}:SecretString:password}}"}
    assert ("DB_SECRET_ARN" in env) == (pattern == "secrets_cached")
    if "DB_SECRET_ARN" in env:
        assert env["DB_SECRET_ARN"] == {"Ref": "AppSecret"}
    assert (env.get("DB_IAM_AUTH") == "true") == (pattern == "iam_token")
    names = load()["Mappings"]["Database"]["Names"]
    user = names["IamUser"] if (pattern == "iam_token" and mode == "direct") else \
        names["AppUser"]
    assert _map(r, env["DB_USER"]) == user
    assert user != names["MasterUser"]  # the workload never logs in as the master user
    handler = r.resources()["WorkloadFunction"]["Properties"]["Handler"]
    assert handler == {"Fn::Sub": "handlers.${HandlerPattern}_handler.lambda_handler"}


def _map(r: Resolved, value: Any) -> Any:
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        name, top, key = value["Fn::FindInMap"]
        return r.template["Mappings"][name][top][key]
    return value


def test_the_template_sets_only_variables_the_code_reads() -> None:
    read_by_settings = set(re.findall(r'"(DB_[A-Z_]+)"', _source(settings)))
    read_by_schema_fn = read_by_settings | set(re.findall(r'"([A-Z_]+)"',
                                                          _source(schema_function)))
    everything = resolved(ConnectMode="direct", HandlerPattern="module_level")
    for mode, pattern in (("proxy", "iam_token"), ("direct", "module_level"),
                          ("direct", "secrets_cached")):
        r = resolved(ConnectMode=mode, HandlerPattern=pattern)
        assert set(env_of(r)) <= read_by_settings, (mode, pattern)
    assert set(env_of(everything, "SchemaFunction")) <= read_by_schema_fn
    # The schema function creates the very role the direct iam_token pattern logs in as,
    # and the application role from the secret the proxy and the workload use.
    schema_env = env_of(everything, "SchemaFunction")
    assert _map(everything, schema_env["DB_IAM_USER"]) == \
        everything.template["Mappings"]["Database"]["Names"]["IamUser"]
    assert schema_env["DB_SECRET_ARN"] == {"Ref": "DbSecret"}
    assert schema_env["DB_APP_SECRET_ARN"] == {"Ref": "AppSecret"}
    policies = everything.resources()["SchemaFunction"]["Properties"]["Policies"]
    assert [p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"] for p in policies] == [
        {"Ref": "DbSecret"}, {"Ref": "AppSecret"}]


def _source(module: Any) -> str:
    return ROOT.joinpath(*module.__name__.split(".")).with_suffix(".py").read_text("utf-8")


def test_handler_parameter_offers_exactly_the_patterns_with_a_handler() -> None:
    param = load()["Parameters"]["HandlerPattern"]
    # A new handlers/<pattern>_handler.py belongs in the template's AllowedValues
    # (and, if it does not read DB_PASSWORD, in its PasswordPattern condition).
    assert PATTERNS == HANDLER_FILES, "deploy/template.yaml HandlerPattern AllowedValues"
    assert param["Default"] == "iam_token"
    for module in [f"{p}_handler" for p in PATTERNS] + ["workload/schema_function"]:
        tree = ast.parse((ROOT / "handlers" / f"{module}.py").read_text("utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "lambda_handler"
                   for n in tree.body), module
    schema_handler = resolved().resources()["SchemaFunction"]["Properties"]["Handler"]
    assert schema_handler == "handlers.workload.schema_function.lambda_handler"


@pytest.mark.parametrize(("mode", "resource"), [
    ("proxy", "dbuser:${ProxyId}/${User}"),
    ("direct", "dbuser:${Db.DbiResourceId}/${IamUser}"),
])
def test_iam_connect_permission_names_the_user_the_function_logs_in_as(mode: str,
                                                                       resource: str) -> None:
    r = resolved(ConnectMode=mode, HandlerPattern="iam_token")
    policies = r.resources()["FunctionRole"]["Properties"]["Policies"]
    assert [p["PolicyName"] for p in policies] == ["rds-iam-connect"]
    (statement,) = policies[0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "rds-db:connect"
    template, variables = statement["Resource"]["Fn::Sub"]
    assert template.endswith(resource)
    # the user in the permission is the one the function logs in as
    db_user = _map(r, env_of(r)["DB_USER"])
    assert _map(r, variables.get("User", variables.get("IamUser"))) == db_user
    # Other patterns get no IAM connect permission; secrets_cached may read the app
    # role's secret, and no function may read the master user's.
    other = resolved(ConnectMode=mode, HandlerPattern="secrets_cached",
                     ProxyIamAuth="DISABLED").resources()["FunctionRole"]["Properties"]
    assert [p["PolicyName"] for p in other["Policies"]] == ["read-app-secret"]
    (read,) = other["Policies"][0]["PolicyDocument"]["Statement"]
    assert read["Resource"] == {"Ref": "AppSecret"}
    plain = resolved(ConnectMode="direct", HandlerPattern="leaky").resources()
    assert plain["FunctionRole"]["Properties"]["Policies"] == []


def test_proxy_iam_tls_and_generated_secrets() -> None:
    r = resolved()
    res = r.resources()
    proxy = res["Proxy"]["Properties"]
    assert proxy["RequireTLS"] is True
    assert proxy["EngineFamily"] == "POSTGRESQL"
    # The proxy knows only the application role: IAM tokens (ProxyIamAuth) name
    # it, and the proxy logs in to the instance with its secret.
    (auth,) = proxy["Auth"]
    assert auth == {"AuthScheme": "SECRETS", "SecretArn": {"Ref": "AppSecret"},
                    "IAMAuth": {"Ref": "ProxyIamAuth"}}
    (read,) = res["ProxyRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert read["Resource"] == {"Ref": "AppSecret"}
    assert r.values["ProxyIamAuth"] == "REQUIRED"
    assert res["ProxyTargetGroup"]["Properties"]["DBInstanceIdentifiers"] == [{"Ref": "Db"}]
    names = r.template["Mappings"]["Database"]["Names"]
    for secret_name, user in (("DbSecret", "MasterUser"), ("AppSecret", "AppUser")):
        secret = res[secret_name]["Properties"]["GenerateSecretString"]
        assert secret["GenerateStringKey"] == "password"
        assert secret["PasswordLength"] >= 32
        text, variables = secret["SecretStringTemplate"]["Fn::Sub"]
        assert variables["User"] == {"Fn::FindInMap": ["Database", "Names", user]}
        assert text.replace("${User}", names[user]) == f'{{"username": "{names[user]}"}}'
    assert len({names["MasterUser"], names["AppUser"], names["IamUser"]}) == 3
    db = res["Db"]["Properties"]
    assert db["MasterUserPassword"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${DbSecret}:SecretString:password}}"}
    assert db["MasterUsername"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${DbSecret}:SecretString:username}}"}
    assert db["EnableIAMDatabaseAuthentication"] is True
    assert db["DBInstanceClass"] == {"Ref": "DbInstanceClass"}
    # No literal password anywhere in the template.
    text = (ROOT / "deploy" / "template.yaml").read_text("utf-8")
    assert not re.search(r"(?i)password\s*:\s*['\"]?[A-Za-z0-9]", text)


@pytest.mark.parametrize(("value", "reserved"), [("0", None), ("100", {"Ref":
                                                                       "ReservedConcurrency"})])
def test_reserved_concurrency_zero_reserves_none(value: str, reserved: Any) -> None:
    props = resolved(ReservedConcurrency=value).resources()["WorkloadFunction"]["Properties"]
    assert props.get("ReservedConcurrentExecutions") == reserved
    assert props["MemorySize"] == {"Ref": "MemorySize"}
    assert props["Timeout"] == {"Ref": "Timeout"}


@pytest.mark.parametrize("api", ["HTTP", "HTTP_AND_REST"])
def test_rest_api_only_when_asked(api: str) -> None:
    res = resolved(ApiType=api).resources()
    with_rest = api == "HTTP_AND_REST"
    assert ("RestApi" in res) == with_rest
    assert ("RestApiInvokePermission" in res) == with_rest
    assert res["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    event = res["WorkloadFunction"]["Properties"]["Events"]["HttpApi"]
    assert event == {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}}}


@pytest.mark.parametrize(("mode", "root"), [("verify-full", "rds-ca-bundle.pem"),
                                            ("require", None)])
def test_ssl_mode_reaches_both_functions_with_the_bundle_only_for_verify_full(
        mode: str, root: str | None) -> None:
    from connstorm.packaging import CA_BUNDLE_NAME

    assert resolved().values["DbSslMode"] == "verify-full"  # require is the named fallback
    r = resolved(DbSslMode=mode, ConnectMode="direct", HandlerPattern="module_level")
    for function in ("WorkloadFunction", "SchemaFunction"):
        env = env_of(r, function)
        assert env["DB_SSLMODE"] == {"Ref": "DbSslMode"}
        assert _map(r, env.get("DB_SSLROOTCERT")) == root, function
    # the path is the one `connstorm package --rds-ca-bundle` writes in the zip
    assert r.template["Mappings"]["Database"]["Files"]["CaBundle"] == CA_BUNDLE_NAME


@pytest.mark.parametrize("debug", ["false", "true"])
def test_proxy_debug_logging_parameter_and_log_group(debug: str) -> None:
    param = load()["Parameters"]["ProxyDebugLogging"]
    assert param["Default"] == "false"
    assert "SQL" in param["Description"]  # it says what lands in the logs
    res = resolved(ProxyDebugLogging=debug).resources()
    assert res["Proxy"]["Properties"]["DebugLogging"] is (debug == "true")
    # The proxy's log group exists before the proxy (so RDS does not create one
    # without retention) under the name RDS Proxy writes to.
    group = res["ProxyLogGroup"]["Properties"]
    assert group["LogGroupName"] == {"Fn::Sub": "/aws/rds/proxy/${AWS::StackName}-proxy"}
    assert res["Proxy"]["Properties"]["DBProxyName"] == {"Fn::Sub": "${AWS::StackName}-proxy"}
    assert group["RetentionInDays"] <= 30
    assert res["Proxy"]["DependsOn"] == "ProxyLogGroup"
    assert res["ProxyLogGroup"]["DeletionPolicy"] == "Delete"


def test_engine_versions_are_in_standard_support_and_extended_support_is_off() -> None:
    param = load()["Parameters"]["DbEngineVersion"]
    offered = [int(v) for v in param["AllowedValues"]]
    # RDS ended standard support for 13 on 2026-02-28 (release calendar); 14 on
    # 2027-02-28, under three months after the template's date.
    assert min(offered) >= 15
    assert param["Default"] in param["AllowedValues"]
    db = resolved().resources()["Db"]["Properties"]
    assert db["EngineVersion"] == {"Ref": "DbEngineVersion"}
    assert db["EngineLifecycleSupport"] == "open-source-rds-extended-support-disabled"
    text = (ROOT / "deploy" / "template.yaml").read_text("utf-8")
    assert "Release calendars for Amazon RDS for PostgreSQL" in text
