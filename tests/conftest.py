"""Shared pytest setup: the real-service fixtures (PostgreSQL, Kafka) are loaded for
every test module; a service starts only when a test asks for it."""

pytest_plugins = ["tests.integration.conftest_services"]
