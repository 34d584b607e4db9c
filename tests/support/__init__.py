"""Helpers shared by the test suites (real Kafka, topic namespaces, consumers)."""
