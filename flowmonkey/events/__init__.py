"""FlowMonkey events."""
