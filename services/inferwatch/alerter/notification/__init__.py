"""Notification and delivery: payloads, signing, the webhook HTTP client, retries, the outbox; and a local receiver for tests and demos."""
