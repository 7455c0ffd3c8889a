terraform {
  required_version = ">= 1.5"
  required_providers {
    interlock = {
      # Installed from the filesystem mirror `make terraform-provider` builds (docs/terraform.md).
      source = "interlock/interlock"
    }
  }
}

# The API URL and key come from INTERLOCK_API_URL and INTERLOCK_API_KEY.
provider "interlock" {}
