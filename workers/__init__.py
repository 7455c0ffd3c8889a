"""Celery workers: probing, verdicts, autoscaling and scalers (later issues)."""
