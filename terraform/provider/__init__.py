"""The Interlock Terraform provider, on the `tf` framework (docs/terraform.md)."""
