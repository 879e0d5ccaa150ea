"""Every output ``connstorm live`` reads is declared, whatever the parameters, with the right value.

The keys come from :mod:`connstorm.stack_outputs`, the module ``connstorm live``
imports, so a renamed output fails here before it fails on AWS.
"""

from __future__ import annotations

import pytest

from connstorm.stack_outputs import ALL_OUTPUTS, CONDITIONAL_OUTPUTS, missing_outputs
from tests.deploy.cfn import Resolved, load

HTTP_ONLY = {"ApiType": "HTTP"}
WITH_REST = {"ApiType": "HTTP_AND_REST"}


def test_template_declares_every_output_and_nothing_else() -> None:
    declared = load()["Outputs"]
    assert set(declared) == set(ALL_OUTPUTS)
    for key in ALL_OUTPUTS:
        assert declared[key].get("Description"), f"{key} has no Description"
        assert ("Condition" in declared[key]) == (key in CONDITIONAL_OUTPUTS), key


@pytest.mark.parametrize("params", [
    HTTP_ONLY, WITH_REST,
    {"ConnectMode": "direct", "HandlerPattern": "module_level"},
    {"ConnectMode": "proxy", "ProxyIamAuth": "DISABLED", "HandlerPattern": "leaky"},
])
def test_required_outputs_exist_with_any_parameters(params: dict[str, str]) -> None:
    outputs = Resolved(load(), params).outputs()
    present = dict.fromkeys(outputs, "x")
    assert missing_outputs(present) == ()
    assert ("RestApiUrl" in outputs) == (params.get("ApiType") == "HTTP_AND_REST")


def test_output_values_name_the_right_resources() -> None:
    resolved = Resolved(load(), WITH_REST)
    values = {key: out["Value"] for key, out in resolved.outputs().items()}
    resources = resolved.resources()
    assert resources["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    # ApiUrl is the HTTP API's base URL: its $default stage has no path prefix
    assert values["ApiUrl"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert values["RestApiUrl"] == {
        "Fn::Sub": "https://${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
                   + resources["RestApi"]["Properties"]["StageName"]}
    assert values["FunctionName"] == {"Ref": "WorkloadFunction"}
    assert values["SchemaFunctionName"] == {"Ref": "SchemaFunction"}
    assert values["DbInstanceId"] == {"Ref": "Db"}
    assert values["ProxyName"] == {"Ref": "Proxy"}
    assert values["Region"] == {"Ref": "AWS::Region"}
    assert values["LogGroupName"] == {"Ref": "WorkloadLogGroup"}
    assert values["ProxyEndpoint"] == {"Fn::GetAtt": ["Proxy", "Endpoint"]}
    assert values["DbEndpoint"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    # the application role's secret, the ARN, never the secret's value (nor the master's)
    assert values["SecretArn"] == {"Ref": "AppSecret"}
    assert values["ProxyLogGroupName"] == {"Ref": "ProxyLogGroup"}
    assert values["ProxyDebugLogging"] == {"Ref": "ProxyDebugLogging"}
    assert values["ConnectMode"] == {"Ref": "ConnectMode"}
    assert resources["WorkloadLogGroup"]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/${WorkloadFunction}"}
    assert resources["Db"]["Type"] == "AWS::RDS::DBInstance"
    assert resources["Proxy"]["Type"] == "AWS::RDS::DBProxy"
