# A whole mesh: a storefront served from two regions of two clouds with a health
# check, a canary split and an autoscaling policy; a gRPC service; a database
# behind a TCP route; and a node token with the bootstrap its proxies start from.

resource "interlock_mesh" "shop" {
  name        = var.mesh
  description = "The shop's services."
  labels      = { team = "storefront" }
}

resource "interlock_health_check" "http" {
  name                = "storefront-http"
  check_interval_sec  = 10
  timeout_sec         = 2
  unhealthy_threshold = 3
  http_health_check = {
    port         = 8080
    request_path = "/healthz"
  }
}

# --- the storefront, in two regions -------------------------------------------------------

resource "interlock_endpoint_group" "storefront_us" {
  name                  = "storefront-us-east-1"
  locality              = { cloud = "aws", region = "us-east-1", zone = "us-east-1a" }
  max_rate_per_endpoint = 200
  scaler = {
    aws_autoscaling_group = { name = "storefront-us", region = "us-east-1" }
  }
  endpoints = [
    { address = "10.10.0.11", port = 8080 },
    { address = "10.10.0.12", port = 8080 },
  ]
}

resource "interlock_endpoint_group" "storefront_eu" {
  name                  = "storefront-europe-west1"
  locality              = { cloud = "gcp", region = "europe-west1", zone = "europe-west1-b" }
  max_rate_per_endpoint = 200
  endpoints = [
    { address = "10.20.0.11", port = 8080, metadata = jsonencode({ pool = "blue" }) },
  ]
}

resource "interlock_endpoint_group" "storefront_canary" {
  name     = "storefront-canary"
  locality = { cloud = "aws", region = "us-east-1", zone = "us-east-1b" }
  endpoints = [
    { address = "10.10.1.21", port = 8080 },
  ]
}

resource "interlock_backend_service" "storefront" {
  name          = "storefront"
  mesh          = interlock_mesh.shop.name
  health_checks = [interlock_health_check.http.name]
  backends = [
    { endpoint_group = interlock_endpoint_group.storefront_us.name },
    { endpoint_group = interlock_endpoint_group.storefront_eu.name },
  ]
  locality_lb_policy = "LEAST_REQUEST"
  outlier_detection = {
    consecutive_errors = 5
    interval_sec       = 10
  }
  failover = { mode = "REGION_THEN_CLOUD", failover_ratio = 0.7 }
}

resource "interlock_backend_service" "storefront_canary" {
  name          = "storefront-canary"
  mesh          = interlock_mesh.shop.name
  health_checks = [interlock_health_check.http.name]
  backends      = [{ endpoint_group = interlock_endpoint_group.storefront_canary.name }]
}

resource "interlock_http_route" "storefront" {
  name      = "storefront"
  meshes    = [interlock_mesh.shop.name]
  hostnames = ["shop.example.com"]
  rules = [
    {
      # Testers opt into the canary with a header.
      matches = [{ prefix_match = "/", header_matches = [{ header = "x-canary", exact_match = "always" }] }]
      action = {
        destinations = [{ service_name = interlock_backend_service.storefront_canary.name }]
      }
    },
    {
      # Everyone else: the canary split.
      action = {
        destinations = [
          { service_name = interlock_backend_service.storefront.name, weight = 100 - var.canary_weight },
          { service_name = interlock_backend_service.storefront_canary.name, weight = var.canary_weight },
        ]
        timeout_sec  = 15
        retry_policy = { retry_conditions = ["5xx", "connect-failure"], num_retries = 2 }
        request_header_modifier = { set = { "x-served-by" = "interlock" } }
      }
    },
  ]
}

resource "interlock_autoscaling_policy" "storefront_us" {
  name         = "storefront-us-east-1"
  target       = interlock_endpoint_group.storefront_us.name
  min_replicas = 2
  max_replicas = 20
  load_balancing_utilization = { target = 0.7 }
  scale_in_control = {
    max_scaled_in_replicas = { percent = 10 }
    time_window_sec        = 600
  }
}

# --- a gRPC service ---------------------------------------------------------------------

resource "interlock_endpoint_group" "inventory" {
  name     = "inventory-us-east-1"
  locality = { cloud = "aws", region = "us-east-1" }
  endpoints = [
    { address = "10.10.2.11", port = 50051 },
  ]
}

resource "interlock_backend_service" "inventory" {
  name     = "inventory"
  mesh     = interlock_mesh.shop.name
  protocol = "GRPC"
  backends = [{ endpoint_group = interlock_endpoint_group.inventory.name }]
}

resource "interlock_grpc_route" "inventory" {
  name      = "inventory"
  meshes    = [interlock_mesh.shop.name]
  hostnames = ["inventory.shop.internal"]
  rules = [{
    matches = [{ method = { grpc_service = "shop.Inventory", grpc_method = "Reserve" } }]
    action = {
      destinations = [{ service_name = interlock_backend_service.inventory.name }]
      timeout_sec  = 2
      retry_policy = { retry_conditions = ["unavailable"], num_retries = 3 }
    }
  }]
}

# --- the database, over TCP ---------------------------------------------------------------

resource "interlock_endpoint_group" "orders_db" {
  name     = "orders-db"
  locality = { cloud = "aws", region = "us-east-1" }
  endpoints = [
    { address = "10.10.3.5", port = 5432 },
  ]
}

resource "interlock_backend_service" "orders_db" {
  name     = "orders-db"
  mesh     = interlock_mesh.shop.name
  protocol = "TCP"
  backends = [{ endpoint_group = interlock_endpoint_group.orders_db.name }]
}

resource "interlock_tcp_route" "orders_db" {
  name   = "orders-db"
  meshes = [interlock_mesh.shop.name]
  rules = [{
    matches = [{ port = 5432 }]
    action  = { destinations = [{ service_name = interlock_backend_service.orders_db.name }] }
  }]
}

# --- the proxies ------------------------------------------------------------------------

resource "interlock_node_token" "storefront" {
  name = "storefront"
  mesh = interlock_mesh.shop.name
}

# The mesh as the API sees it once every route is in place (its revision is an output).
data "interlock_mesh" "shop" {
  name       = interlock_mesh.shop.name
  depends_on = [interlock_http_route.storefront, interlock_grpc_route.inventory, interlock_tcp_route.orders_db]
}
