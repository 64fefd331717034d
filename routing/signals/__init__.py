"""Conversation signals: pure functions that score a conversation in [0, 1] with reasons."""
