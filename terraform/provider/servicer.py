"""`tf`'s gRPC servicer with one RPC planned our way.

`tf` 1.2 passes a create's plan through untouched and never shows a resource
its configuration, so it cannot plan the API's defaults inside nested objects
(Terraform would then call the applied state inconsistent), nor tell "left
out" from "kept from the prior state". Here every plan, create or update, is
the resource's `plan_change(prior, config)`."""
from __future__ import annotations

import tf.provider
from tf.gen import tfplugin_pb2 as pb
from tf.iface import PlanContext
from tf.provider import ProviderServicer, _decode_state, _encode_state
from tf.utils import Diagnostics, _to_attribute_path, read_dynamic_value


class InterlockServicer(ProviderServicer):
    def PlanResourceChange(self, request: pb.PlanResourceChange.Request, context):
        diags = Diagnostics()
        type_name = request.type_name
        attrs, blocks = self._get_res_attrs(type_name), self._get_res_blocks(type_name)
        _, prior = _decode_state(diags, attrs, blocks, request.prior_state)
        proposed_enc, proposed = _decode_state(diags, attrs, blocks, request.proposed_new_state)
        config = read_dynamic_value(request.config)
        if diags.has_errors() or proposed is None:  # errors, or a destroy: nothing to plan
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state,
                                                  diagnostics=diags.to_pb())
        resource = self.app.new_resource(self._get_res_cls(type_name))
        planned, replace = resource.plan_change(PlanContext(diags, type_name, changed_fields=set()), prior, config)
        return pb.PlanResourceChange.Response(
            planned_state=_encode_state(attrs, blocks, planned, proposed_enc),
            requires_replace=[_to_attribute_path(path) for path in replace],
            diagnostics=diags.to_pb(),
        )


def install():
    """`tf.runner.run_provider` builds `tf.provider.ProviderServicer` when it starts."""
    tf.provider.ProviderServicer = InterlockServicer
