"""The Celery app. Policy lives in the CELERY_* settings; this module only builds the app."""

import os

from celery import Celery

from studio import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
broker.register()  # filesystem:// is the embedded broker that never half-reads a message

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
