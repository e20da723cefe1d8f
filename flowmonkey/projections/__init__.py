"""FlowMonkey projections."""
