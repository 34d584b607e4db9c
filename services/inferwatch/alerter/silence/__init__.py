"""Silences: matchers plus a time range; matching alerts are not notified while active."""
