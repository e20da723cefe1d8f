"""A flow defined in Python, with its own handler, for ``flowmonkey run``.

    flowmonkey run examples/flows/approval.py --input '{"amount": 250}'
        # exits 3: waiting for a signal; prints the resume token
    flowmonkey run examples/flows/approval.py --input '{"amount": 250}' \\
        --resume '{"approved": true, "by": "grace"}'
        # exits 0: resumed with that data and completed

A Python flow file exposes ``flow`` or ``flows`` and optionally ``handlers`` and
``tables``; the built-in handlers are always available.
"""

from __future__ import annotations

from flowmonkey import Flow, HandlerParams, Result, StepResult, handler


@handler("manager-approval", description="Wait until a manager approves or rejects.")
async def manager_approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal(f"approve a spend of {params.input}")


flow = Flow.model_validate({
    "id": "spend-approval",
    "version": "1.0.0",
    "initialStepId": "check",
    "steps": {
        "check": {
            "type": "conditional",
            "config": {"conditions": [{"path": "amount", "op": "lt", "value": 100,
                                       "target": "auto-approve"}],
                       "default": "ask"},
            "transitions": {"onSuccess": "ask"},
        },
        "auto-approve": {
            "type": "transform", "config": {"expression": "{'approved': True, 'by': 'policy'}"},
            "outputKey": "decision", "transitions": {"onSuccess": None},
        },
        "ask": {
            "type": "manager-approval", "input": {"type": "key", "key": "amount"},
            "outputKey": "decision", "transitions": {"onResume": None},
        },
    },
})

handlers = [manager_approval]
