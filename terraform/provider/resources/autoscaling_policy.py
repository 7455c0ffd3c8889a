"""interlock_autoscaling_policy: resizing an endpoint group from the load its proxies report."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource


class AutoscalingPolicy(ApiResource):
    name = "autoscaling_policy"
    collection = "autoscaling-policies"
    description = ("An autoscaling policy: Interlock's workers compare the request rate the proxies report for an "
                   "endpoint group with the group's capacity (endpoints x `max_rate_per_endpoint`) and resize the "
                   "group through its scaler to keep the utilization at the target.")
    fields = (
        *s.common("autoscaling policy", "autoscaling policies"),
        s.string("target", "The endpoint group to scale, by name; it needs a `scaler`, and only one policy may "
                           "scale it.", required=True),
        s.number("min_replicas", "The fewest endpoints the group is scaled to (0 to 10000).", default=1),
        s.number("max_replicas", "The most endpoints the group is scaled to (1 to 10000, at least "
                                 "`min_replicas`).", required=True),
        s.number("cooldown_period", "Seconds after a resize before the next decision (15 to 3600).", default=60),
        s.single("load_balancing_utilization", "The utilization to keep.", (
            s.number("target", "The share of the group's capacity to keep in use (0.01 to 1).", required=True),
        ), required=True),
        s.single("scale_in_control", "Limits on how fast the group shrinks.", (
            s.single("max_scaled_in_replicas", "The most endpoints removed within `time_window_sec`: exactly one of "
                                               "`fixed` and `percent`.", (
                s.number("fixed", "A number of endpoints."),
                s.number("percent", "A percentage of the group's endpoints."),
            ), required=True),
            s.number("time_window_sec", "The window in seconds (1 to 3600).", required=True),
        )),
        s.string("mode", "`ON` scales both ways, `ONLY_SCALE_OUT` only grows the group, `OFF` only records "
                         "decisions.", default="ON", choices=("ON", "OFF", "ONLY_SCALE_OUT")),
        s.ETAG,
    )
