from rest_framework import serializers

from studio.api.inputs import InputSerializer

from ..bases import bases
from ..models import (
    ENVIRONMENT_NAME_MESSAGE,
    ENVIRONMENT_NAME_PATTERN,
    Environment,
    EnvironmentBuild,
    EnvironmentVersion,
)

REQUIREMENTS_HELP = (
    "pip requirements, one per line (PEP 508: a name, optional extras, version and marker), e.g. "
    "`tabulate==0.9.0`. No pip options (-e, -r, --index-url), URLs or paths; # starts a comment."
)


class EnvironmentIn(InputSerializer):
    name = serializers.RegexField(
        ENVIRONMENT_NAME_PATTERN,
        max_length=100,
        error_messages={"invalid": ENVIRONMENT_NAME_MESSAGE},
        help_text="1–100 letters, digits, dots, hyphens or underscores.",
    )
    base = serializers.ChoiceField(choices=list(bases()), help_text="A curated base (GET /api/v1/environment-bases/).")
    requirements = serializers.CharField(
        max_length=20_000,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text=REQUIREMENTS_HELP,
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class EnvironmentVersionIn(InputSerializer):
    base = serializers.ChoiceField(choices=list(bases()))
    requirements = serializers.CharField(
        max_length=20_000,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text=REQUIREMENTS_HELP,
    )


class EnvironmentOut(serializers.ModelSerializer):
    latest_version = serializers.IntegerField(allow_null=True)
    latest_version_id = serializers.IntegerField(allow_null=True, help_text="What a command job's spec names.")
    latest_base = serializers.CharField(allow_null=True)
    version_count = serializers.IntegerField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Environment
        fields = [
            "id",
            "name",
            "description",
            "latest_version",
            "latest_version_id",
            "latest_base",
            "version_count",
            "created_by",
            "created_at",
            "updated_at",
        ]


class BuildOut(serializers.ModelSerializer):
    class Meta:
        model = EnvironmentBuild
        fields = ["host", "state", "size_bytes", "seconds", "started_at", "finished_at", "last_used_at", "log_tail"]


class EnvironmentVersionOut(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = EnvironmentVersion
        fields = ["id", "version", "base", "requirements", "spec_hash", "created_by", "created_at"]


class EnvironmentVersionDetailOut(EnvironmentVersionOut):
    lock = serializers.CharField(help_text="`pip freeze` of the first build; empty until a node built it.")
    builds = BuildOut(many=True, help_text="The version's build on each host.")

    class Meta(EnvironmentVersionOut.Meta):
        fields = EnvironmentVersionOut.Meta.fields + ["lock", "builds"]


class PackageOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()


class BaseOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    python_version = serializers.CharField()
    packages = serializers.SerializerMethodField()

    def get_packages(self, base) -> list[dict]:
        return [{"name": name, "version": version} for name, version in base.pinned().items()]
