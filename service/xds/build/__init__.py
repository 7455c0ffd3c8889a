"""Builders of Envoy xDS v3 messages from policy values, one module per
resource type; ``translate.py`` decides when each runs. Pure functions: no
ORM, no I/O, no caching here."""
