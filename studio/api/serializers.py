from django.utils import timezone
from rest_framework import serializers

from ..models import ApiToken, WorkerCheck
from .inputs import InputSerializer


class MeOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()


class TokenIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class TokenOut(serializers.ModelSerializer):
    active = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "active"]

    def get_active(self, token) -> bool:
        return token.revoked_at is None and (token.expires_at is None or token.expires_at > timezone.now())


class TokenCreatedOut(TokenOut):
    token = serializers.CharField(help_text="The token itself. Shown once: store it now.")

    class Meta(TokenOut.Meta):
        fields = TokenOut.Meta.fields + ["token"]


class WorkerCheckOut(serializers.ModelSerializer):
    round_trip_ms = serializers.FloatField(allow_null=True)

    class Meta:
        model = WorkerCheck
        fields = ["id", "requested_at", "completed_at", "worker", "broker", "round_trip_ms"]


class HealthOut(serializers.Serializer):
    ok = serializers.BooleanField()
    database = serializers.BooleanField()
    workers_consuming = serializers.BooleanField()
    last_canary_at = serializers.DateTimeField(allow_null=True)
