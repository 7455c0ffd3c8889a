from rest_framework import serializers

from service.mesh.api.serializers.base import Block, PolicySerializer, duration
from service.mesh.validation import invalid
from service.mesh.models import AutoscalingPolicy, EndpointGroup
from service.tenants.api.fields import TenantSlugRelatedField

MAX_REPLICAS = 10_000


class LoadBalancingUtilization(Block):
    # The share of the group's capacity (endpoints x max rate) to keep in use.
    target = serializers.FloatField(min_value=0.01, max_value=1.0)


class MaxScaledInReplicas(Block):
    one_of = ("fixed", "percent")
    one_of_required = True

    fixed = serializers.IntegerField(required=False, min_value=0, max_value=MAX_REPLICAS)
    percent = serializers.IntegerField(required=False, min_value=0, max_value=100)


class ScaleInControl(Block):
    max_scaled_in_replicas = MaxScaledInReplicas()
    time_window_sec = duration(minimum=1, maximum=3600)


class AutoscalingPolicySerializer(PolicySerializer):
    target = TenantSlugRelatedField(queryset=EndpointGroup.objects.all())
    min_replicas = serializers.IntegerField(default=1, min_value=0, max_value=MAX_REPLICAS)
    max_replicas = serializers.IntegerField(min_value=1, max_value=MAX_REPLICAS)
    cooldown_period = serializers.IntegerField(default=60, min_value=15, max_value=3600)
    load_balancing_utilization = LoadBalancingUtilization()
    scale_in_control = ScaleInControl(required=False, allow_null=True)
    mode = serializers.ChoiceField(["ON", "OFF", "ONLY_SCALE_OUT"], default="ON")

    class Meta:
        model = AutoscalingPolicy
        fields = (
            PolicySerializer.common_fields
            + ["target", "min_replicas", "max_replicas", "cooldown_period", "load_balancing_utilization",
               "scale_in_control", "mode"]
            + PolicySerializer.metadata_fields
        )

    def validate_target(self, group):
        if not group.scaler:
            raise serializers.ValidationError(
                f"endpoint-groups/{group.name} has no scaler, so nothing could carry out a decision; give it one.",
                code="no_scaler",
            )
        taken = AutoscalingPolicy.objects.filter(target=group).exclude(pk=getattr(self.instance, "pk", None)).first()
        if taken:
            raise serializers.ValidationError(
                f"autoscaling-policies/{taken.name} already scales endpoint-groups/{group.name}.", code="target_in_use"
            )
        return group

    def validate(self, attrs):
        low, high = attrs["min_replicas"], attrs["max_replicas"]
        if low > high:
            raise invalid("min_replicas", f"min_replicas ({low}) is above max_replicas ({high}).", "min_above_max")
        return attrs
