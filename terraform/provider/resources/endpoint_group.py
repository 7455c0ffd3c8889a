"""interlock_endpoint_group: endpoints in one locality, their capacity, and what scales them."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource

AWS_REGION = "The AWS region it is in, e.g. `us-east-1`."


class EndpointGroup(ApiResource):
    name = "endpoint_group"
    collection = "endpoint-groups"
    description = ("An endpoint group: the endpoints (IP addresses or hostnames and ports) of one workload in one "
                   "locality, the capacity each endpoint has, and optionally the scaler an autoscaling policy "
                   "drives. Workloads may also attach and detach their own endpoints through the API; leave "
                   "`endpoints` out of the configuration to let them.")
    fields = (
        *s.common("endpoint group", "endpoint groups"),
        s.single("locality", "Where the endpoints run. Proxies prefer endpoints in their own region, then their "
                             "cloud, so traffic fails over across regions and clouds.", (
            s.string("cloud", "The cloud, e.g. `aws`, `gcp`, `azure`, `onprem`.", default=""),
            s.string("region", "The region, e.g. `us-east-1`.", default=""),
            s.string("zone", "The zone, e.g. `us-east-1a`.", default=""),
        ), default={}),
        s.number("max_rate_per_endpoint", "Requests per second one endpoint is meant to take, for balancing and "
                                          "autoscaling (backends may override it)."),
        s.number("capacity_scaler", "A factor (0 to 1) on the group's capacity; 0 drains it.", default=1.0),
        s.single("scaler", "What an autoscaling policy resizes. Set exactly one of its objects.", (
            s.single("aws_autoscaling_group", "An EC2 Auto Scaling group.", (
                s.string("name", "The Auto Scaling group's name.", required=True),
                s.string("region", AWS_REGION, required=True),
            )),
            s.single("aws_ecs_service", "An ECS service; its desired count is set.", (
                s.string("cluster", "The ECS cluster's name or ARN.", required=True),
                s.string("service", "The ECS service's name.", required=True),
                s.string("region", AWS_REGION, required=True),
            )),
            s.single("webhook", "A URL of yours (http or https), called with each scaling decision.", (
                s.string("url", "The URL to POST decisions to.", required=True),
            )),
        )),
        s.many("endpoints", "The group's endpoints, each address and port once. Left out, Terraform does not manage "
                            "them: the group keeps the endpoints workloads attached through the API (write "
                            "`endpoints = []` to remove all).", (
            s.string("address", "An IPv4 or IPv6 address, or a DNS hostname.", required=True),
            s.number("port", "The port (1 to 65535).", required=True),
            s.number("weight", "The endpoint's share of its locality's traffic, relative to the others "
                               "(1 to 100000).", default=1),
            s.json_text("metadata", "Metadata proxies receive with the endpoint (EDS), as JSON: "
                                    "`jsonencode({ version = \"v2\" })`.", default="{}"),
        ), kept=True),
        s.ETAG,
    )
