"""FlowMonkey testing."""
