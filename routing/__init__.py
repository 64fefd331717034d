"""Routing: conversation signals, escalation policy and explainable tier decisions."""
