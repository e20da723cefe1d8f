"""FlowMonkey processors."""
