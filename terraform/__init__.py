"""Terraform for Interlock: the provider, HCL examples and a CDKTF app."""
