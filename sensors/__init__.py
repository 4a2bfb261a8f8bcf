"""Sensor factories (``make_*_sensor(job)``): new bars → downstream jobs, run failure → Slack, freshness."""
