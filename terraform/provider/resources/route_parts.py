"""What the route resources share: where they apply, and the parts of their
actions HTTP and gRPC have in common (destinations, retries, fault injection)."""
from terraform.provider import schema as s

HTTP_RETRY_CONDITIONS = ("5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
                         "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
GRPC_RETRY_CONDITIONS = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
                         "connect-failure", "refused-stream", "reset")


def meshes():
    return s.string_set("meshes", "The meshes the route applies in (a set). Its destinations must belong to every "
                                  "one of them.", required=True)


def hostnames(kind: str):
    return s.strings("hostnames", f"The hosts the route serves ({kind}), e.g. `api.example.com`, `*.example.com`; "
                                  "no other HTTP or gRPC route of the route's meshes may serve one of them.",
                     required=True)


def destinations(**kwargs):
    return s.many("destinations", "Where traffic goes, split by weight; each backend service once.", (
        s.string("service_name", "The backend service, by name.", required=True),
        s.number("weight", "Its share of the traffic relative to the other destinations (0 to 1000000); a canary "
                           "split is e.g. 90 and 10.", default=1),
    ), **kwargs)


def retry_policy(conditions):
    return s.single("retry_policy", "When and how often a failed request is retried.", (
        s.strings("retry_conditions", "The failures that are retried, from: " + ", ".join(
            f"`{c}`" for c in conditions) + "."),
        s.number("num_retries", "Retries per request (0 to 25).", default=1),
        s.number("per_try_timeout_sec", "Seconds each try may take (at most the action's `timeout_sec`)."),
    ))


def fault_injection_policy():
    return s.single("fault_injection_policy", "Delays and aborts injected into a share of requests, for testing "
                                              "resilience; give a delay, an abort or both.", (
        s.single("delay", "Delay requests before forwarding them.", (
            s.number("fixed_delay_sec", "The delay in seconds.", required=True),
            s.number("percentage", "The share of requests delayed (percent).", default=100),
        )),
        s.single("abort", "Answer requests with an error instead of forwarding them.", (
            s.number("http_status", "The HTTP status to answer with (200 to 599).", required=True),
            s.number("percentage", "The share of requests aborted (percent).", default=100),
        )),
    ))


def timeout():
    return s.number("timeout_sec", "Seconds a request may take, overriding the backend service's timeout.")


def rules(description: str, rule_fields):
    return s.many("rules", description, rule_fields, required=True)
