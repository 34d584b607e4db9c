"""Kafka plumbing shared by every hop: client configuration and topic administration."""
