from rest_framework import serializers

from studio.api.inputs import InputSerializer

from ..models import InstanceSchedule, ScheduleAction
from ..services import schedule_describe


class LabEnvironmentIn(InputSerializer):
    environment_version = serializers.IntegerField(
        allow_null=True, min_value=1, help_text="An environment version of this workspace; null: the studio's default."
    )


class ScheduleIn(InputSerializer):
    action = serializers.ChoiceField(choices=ScheduleAction.choices)
    time_of_day = serializers.RegexField(
        r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
        max_length=5,
        help_text="HH:MM on a 24-hour clock, e.g. 08:30.",
        error_messages={"invalid": "Give a time as HH:MM, from 00:00 to 23:59."},
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        min_length=1,
        max_length=7,
        help_text="Days it fires: 0 is Monday, 6 is Sunday.",
        error_messages={"min_length": "Choose at least one weekday."},
    )
    time_zone = serializers.CharField(max_length=64, help_text="An IANA time zone, e.g. Europe/Paris or UTC.")


class ScheduleOut(serializers.ModelSerializer):
    time_of_day = serializers.TimeField(format="%H:%M")
    weekdays = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()

    class Meta:
        model = InstanceSchedule
        fields = ["id", "action", "time_of_day", "weekdays", "time_zone", "enabled", "last_fired_at", "created_at"]
        fields += ["description"]

    def get_weekdays(self, schedule) -> list[int]:
        return [int(d) for d in schedule.weekdays]

    def get_description(self, schedule) -> str:
        return schedule_describe(schedule)
