from rest_framework import serializers

from studio.api.inputs import InputSerializer

from ..models import Activity, Membership, Role, Workspace


class WorkspaceIn(InputSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class WorkspaceUpdateIn(InputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class WorkspaceOut(serializers.ModelSerializer):
    role = serializers.CharField(help_text="Your role in this workspace.")
    member_count = serializers.IntegerField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    storage_used_bytes = serializers.IntegerField(
        source="storage_used", help_text="Bytes of data versions, job artifacts, model files and pending uploads."
    )
    storage_quota_bytes = serializers.IntegerField(
        source="storage_quota", help_text="Bytes the workspace may hold; uploads and jobs past it are refused."
    )

    class Meta:
        model = Workspace
        fields = [
            "id",
            "name",
            "description",
            "role",
            "member_count",
            "storage_used_bytes",
            "storage_quota_bytes",
            "created_by",
            "created_at",
            "updated_at",
        ]


class MemberIn(InputSerializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateIn(InputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberOut(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    user_id = serializers.IntegerField()
    added_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user_id", "username", "role", "added_by", "created_at"]


class ActivityOut(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Activity
        fields = ["id", "actor", "verb", "summary", "created_at"]
