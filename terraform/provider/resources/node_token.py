"""interlock_node_token: the credential a proxy presents to join a mesh."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource


class NodeToken(ApiResource):
    name = "node_token"
    collection = "node-tokens"
    description = ("A node token: the secret Envoy sidecars and gRPC clients present (in their bootstrap) to "
                   "receive a mesh's configuration. Tokens are created and revoked, never edited: a change of "
                   "any argument revokes the token and issues a new one.")
    fields = (
        s.string("name", "The token's name, unique in the tenant: an RFC 1035 label. It is also the "
                                        "import ID.", required=True, replace=True),
        s.string("mesh", "The mesh the token admits proxies to.", required=True, replace=True),
        s.string("token", "The secret. The API shows it once, when the token is created, so it is known only to "
                          "the state of the apply that created it; an imported token's is null.",
                 read_only=True, sensitive=True),
    )

    def state(self, body, reference):
        state = super().state(body, reference)
        if state["token"] is None and reference:
            state["token"] = reference.get("token")  # reads never show the secret again
        return state
