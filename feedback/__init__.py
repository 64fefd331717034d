"""Feedback: the turn and event log that operators review."""
