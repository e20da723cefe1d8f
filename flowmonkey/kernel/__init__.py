"""FlowMonkey kernel."""
