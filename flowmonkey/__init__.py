"""FlowMonkey."""
