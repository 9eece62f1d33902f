"""JupyterLab on compute instances: one lab per instance, started beside its node, reached only
through the studio's lab proxy by the instance's owner; start and stop schedules."""

from django.db import models


class LabState(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"  # environment being prepared, or the server not answering yet
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"  # `reason` and `log_tail` say why


class InstanceLab(models.Model):
    """The lab of one compute instance, as its lab process last reported it. The address and the
    sealed token are what the lab proxy needs to reach the Jupyter server; the browser never sees
    the token."""

    target = models.OneToOneField("compute.ComputeTarget", on_delete=models.CASCADE, related_name="lab")
    # None: the curated default environment (labs.environment).
    environment_version = models.ForeignKey(
        "environments.EnvironmentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, choices=LabState.choices, default=LabState.STOPPED)
    reason = models.CharField(max_length=500, blank=True)
    log_tail = models.TextField(blank=True)  # the lab's last log lines (secrets masked)
    node = models.ForeignKey("compute.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    host = models.CharField(max_length=255, blank=True)  # where the Jupyter server runs
    address = models.CharField(max_length=100, blank=True)  # "127.0.0.1:PORT", for the proxy only
    token_sealed = models.TextField(blank=True)  # Jupyter's token, sealed (commands.sealing)
    pid = models.PositiveIntegerField(null=True, blank=True)  # the lab process (manage.py instance_lab)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"lab of {self.target}"


class ScheduleAction(models.TextChoices):
    START = "start", "Start"
    STOP = "stop", "Stop"


class InstanceSchedule(models.Model):
    """Start or stop an instance at a time of day on some weekdays, in a time zone (as in Azure ML)."""

    target = models.ForeignKey("compute.ComputeTarget", on_delete=models.CASCADE, related_name="lab_schedules")
    action = models.CharField(max_length=10, choices=ScheduleAction.choices)
    time_of_day = models.TimeField()
    weekdays = models.CharField(max_length=7, default="01234")  # digits, Monday = 0
    time_zone = models.CharField(max_length=64, default="UTC")  # an IANA name, e.g. Europe/Paris
    enabled = models.BooleanField(default=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["target", "time_of_day", "pk"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target} at {self.time_of_day:%H:%M} {self.time_zone}"
