"""One module per resource type: its attributes, and where it lives in the API."""
