# The bootstrap the storefront's Envoy sidecars start from, made with the node token:
# `terraform output -raw envoy_bootstrap > envoy.json`, then `envoy -c envoy.json`.

data "interlock_proxy_bootstrap" "storefront" {
  kind   = "envoy"
  server = var.xds_server
  mesh   = interlock_mesh.shop.name
  node   = "storefront-1"
  token  = interlock_node_token.storefront.token
  cloud  = "aws"
  region = "us-east-1"
}

output "envoy_bootstrap" {
  description = "The bootstrap of the storefront's Envoy sidecars."
  value       = data.interlock_proxy_bootstrap.storefront.json
  sensitive   = true
}
