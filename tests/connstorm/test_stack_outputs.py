"""The output keys deploy/template.yaml declares and ``connstorm live`` reads."""

from __future__ import annotations

from connstorm.stack_outputs import (
    ALL_OUTPUTS,
    CONDITIONAL_OUTPUTS,
    OPTIONAL_OUTPUTS,
    REQUIRED_OUTPUTS,
    missing_outputs,
)


def test_contract_names_kept_exactly() -> None:
    # Issue 12 fixes these five names; scripts and docs rely on them.
    assert REQUIRED_OUTPUTS == ("ApiUrl", "FunctionName", "DbInstanceId", "ProxyName", "Region")
    assert not set(REQUIRED_OUTPUTS) & set(OPTIONAL_OUTPUTS)
    assert set(OPTIONAL_OUTPUTS) >= CONDITIONAL_OUTPUTS
    assert ALL_OUTPUTS == REQUIRED_OUTPUTS + OPTIONAL_OUTPUTS


def test_missing_outputs_names_the_absent_or_empty_required_keys_in_order() -> None:
    outputs = {"ApiUrl": "https://x", "Region": "us-east-1", "FunctionName": "",
               "RestApiUrl": "https://y"}
    assert missing_outputs(outputs) == ("FunctionName", "DbInstanceId", "ProxyName")
    assert missing_outputs(dict.fromkeys(REQUIRED_OUTPUTS, "v")) == ()
