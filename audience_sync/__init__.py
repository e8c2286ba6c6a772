"""Audience sync: brings audience membership from the outbound orchestrator into Redis."""
