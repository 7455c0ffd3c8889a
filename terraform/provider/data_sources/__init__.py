"""The data sources: a mesh, and a proxy bootstrap."""
