"""The example mesh (terraform/examples/mesh) as a CDKTF app.

    python terraform/cdktf/main.py            # writes cdktf.out/stacks/shop/cdk.tf.json
    cd cdktf.out/stacks/shop && terraform init && terraform apply

Plain Python synthesizes it (CDKTF's jsii runtime runs on node); neither the
cdktf CLI nor `cdktf get` is needed. The output is Terraform JSON that uses the
same provider as the HCL example, installed the same way (docs/terraform.md).
`CDKTF_OUTDIR` chooses another output directory.
"""
from __future__ import annotations

from cdktf import App, Op, TerraformOutput, TerraformStack, TerraformVariable
from constructs import Construct

from terraform.cdktf.interlock import DataSource, Resource, local_state, provider

STACK = "shop"


def group(scope, id, name, cloud, region, zone="", endpoints=(), **extra) -> Resource:
    return Resource(scope, id, "endpoint_group", name=name, locality={"cloud": cloud, "region": region, "zone": zone},
                    endpoints=[{"address": address, "port": port} for address, port in endpoints], **extra)


class ShopStack(TerraformStack):
    """A storefront in two regions of two clouds with a health check, a canary
    split and an autoscaling policy; a gRPC service; a database over TCP; a
    node token and the bootstrap its proxies start from."""

    def __init__(self, scope: Construct, id: str):
        super().__init__(scope, id)
        local_state(self)
        provider(self)
        canary_weight = TerraformVariable(self, "canary_weight", type="number", default=10,
                                          description="Percent of the storefront's traffic that goes to the canary.")
        xds_server = TerraformVariable(self, "xds_server", type="string", default="xds.example.com:443",
                                       description="host:port of Interlock's xDS server.")

        mesh = Resource(self, "shop", "mesh", name="shop", description="The shop's services.",
                        labels={"team": "storefront"})
        in_mesh = mesh.ref("name")
        check = Resource(self, "http", "health_check", name="storefront-http", check_interval_sec=10, timeout_sec=2,
                         unhealthy_threshold=3, http_health_check={"port": 8080, "request_path": "/healthz"})

        us = group(self, "storefront_us", "storefront-us-east-1", "aws", "us-east-1", "us-east-1a",
                   [("10.10.0.11", 8080), ("10.10.0.12", 8080)], max_rate_per_endpoint=200,
                   scaler={"aws_autoscaling_group": {"name": "storefront-us", "region": "us-east-1"}})
        eu = group(self, "storefront_eu", "storefront-europe-west1", "gcp", "europe-west1", "europe-west1-b",
                   [("10.20.0.11", 8080)], max_rate_per_endpoint=200)
        canary_group = group(self, "storefront_canary_group", "storefront-canary", "aws", "us-east-1", "us-east-1b",
                             [("10.10.1.21", 8080)])
        storefront = Resource(
            self, "storefront", "backend_service", name="storefront", mesh=in_mesh,
            health_checks=[check.ref("name")],
            backends=[{"endpoint_group": us.ref("name")}, {"endpoint_group": eu.ref("name")}],
            locality_lb_policy="LEAST_REQUEST", outlier_detection={"consecutive_errors": 5, "interval_sec": 10},
            failover={"mode": "REGION_THEN_CLOUD", "failover_ratio": 0.7})
        canary = Resource(self, "storefront_canary", "backend_service", name="storefront-canary", mesh=in_mesh,
                          health_checks=[check.ref("name")], backends=[{"endpoint_group": canary_group.ref("name")}])
        http_route = Resource(self, "storefront_route", "http_route", name="storefront", meshes=[in_mesh],
                              hostnames=["shop.example.com"], rules=[
            {"matches": [{"prefix_match": "/", "header_matches": [{"header": "x-canary", "exact_match": "always"}]}],
             "action": {"destinations": [{"service_name": canary.ref("name")}]}},
            {"action": {
                "destinations": [
                    {"service_name": storefront.ref("name"), "weight": Op.sub(100, canary_weight.number_value)},
                    {"service_name": canary.ref("name"), "weight": canary_weight.number_value},
                ],
                "timeout_sec": 15,
                "retry_policy": {"retry_conditions": ["5xx", "connect-failure"], "num_retries": 2},
                "request_header_modifier": {"set": {"x-served-by": "interlock"}},
            }},
        ])
        Resource(self, "storefront_us_scaling", "autoscaling_policy", name="storefront-us-east-1",
                 target=us.ref("name"), min_replicas=2, max_replicas=20, load_balancing_utilization={"target": 0.7},
                 scale_in_control={"max_scaled_in_replicas": {"percent": 10}, "time_window_sec": 600})

        inventory_group = group(self, "inventory_group", "inventory-us-east-1", "aws", "us-east-1",
                                endpoints=[("10.10.2.11", 50051)])
        inventory = Resource(self, "inventory", "backend_service", name="inventory", mesh=in_mesh, protocol="GRPC",
                             backends=[{"endpoint_group": inventory_group.ref("name")}])
        grpc_route = Resource(self, "inventory_route", "grpc_route", name="inventory", meshes=[in_mesh],
                              hostnames=["inventory.shop.internal"], rules=[{
            "matches": [{"method": {"grpc_service": "shop.Inventory", "grpc_method": "Reserve"}}],
            "action": {"destinations": [{"service_name": inventory.ref("name")}], "timeout_sec": 2,
                       "retry_policy": {"retry_conditions": ["unavailable"], "num_retries": 3}},
        }])

        database_group = group(self, "orders_db_group", "orders-db", "aws", "us-east-1",
                               endpoints=[("10.10.3.5", 5432)])
        database = Resource(self, "orders_db", "backend_service", name="orders-db", mesh=in_mesh, protocol="TCP",
                            backends=[{"endpoint_group": database_group.ref("name")}])
        tcp_route = Resource(self, "orders_db_route", "tcp_route", name="orders-db", meshes=[in_mesh], rules=[{
            "matches": [{"port": 5432}], "action": {"destinations": [{"service_name": database.ref("name")}]},
        }])

        token = Resource(self, "storefront_token", "node_token", name="storefront", mesh=in_mesh)
        bootstrap = DataSource(self, "storefront_bootstrap", "proxy_bootstrap", kind="envoy",
                               server=xds_server.string_value, mesh=in_mesh, node="storefront-1",
                               token=token.ref("token"), cloud="aws", region="us-east-1")
        current = DataSource(self, "shop_now", "mesh", name=in_mesh, depends_on=[http_route, grpc_route, tcp_route])

        TerraformOutput(self, "mesh_revision", value=current.ref("revision"))
        TerraformOutput(self, "envoy_bootstrap", value=bootstrap.ref("json"), sensitive=True)


def synth() -> App:
    app = App()
    ShopStack(app, STACK)
    app.synth()
    return app


if __name__ == "__main__":
    synth()
