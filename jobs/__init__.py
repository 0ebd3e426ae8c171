"""Scheduled jobs: they alone decide when; each occurrence runs exactly once."""
