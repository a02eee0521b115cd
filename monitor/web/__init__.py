"""The triage inbox web app."""
