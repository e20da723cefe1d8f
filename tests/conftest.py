"""Shared pytest setup: the real-service fixtures (PostgreSQL, Kafka) are loaded for
every test module; a service starts only when a test asks for it. So is the fixture
of long-running CLI processes (`running`)."""

pytest_plugins = ["tests.integration.conftest_services", "tests.process_support"]
