"""Interlock's control plane: a Django project with the tenants and mesh apps."""
