"""Sensor factories (``make_*_sensor(job)``): new bars → downstream jobs, the notification outbox → the notifier, run failure → Slack, freshness."""
