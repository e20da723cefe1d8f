from __future__ import annotations

from flowmonkey.handlers import StepHandler, SubFlowHandler, builtin


def test_builtin_handlers() -> None:
    handlers = builtin()
    assert [h.metadata.type for h in handlers] == [
        "http", "delay", "transform", "conditional", "switch", "batch-process",
        "form-submit", "email-reply"]
    categories = {h.metadata.type: h.metadata.category for h in handlers}
    assert categories == {
        "http": "external", "delay": "control", "transform": "data",
        "conditional": "control", "switch": "control", "batch-process": "data",
        "form-submit": "control", "email-reply": "external"}
    for h in handlers:
        assert isinstance(h, StepHandler)
        assert h.metadata.config_schema is not None
        assert h.metadata.config_schema["type"] == "object"
        assert h.metadata.to_dict()["configSchema"] == h.metadata.config_schema


def test_sub_flow_is_registered_by_the_engine() -> None:
    sub = SubFlowHandler(lambda flow_id, version: True)
    assert isinstance(sub, StepHandler)
    assert sub.metadata.type == "sub-flow"
    assert sub.metadata.category == "control"
