"""The web server's WSGI application (gunicorn portal.wsgi:application): Django's, with scoring
requests answered the short way (endpoints/scoring_route.py)."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import reverse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django_application = get_wsgi_application()
# Load the URLconf, and every view with it, while the worker starts rather than in the first request
# it answers: it reaches the training app and its ML libraries (2.5-4 s of imports), which a user's
# first page after a start waited for, on each web process.
reverse("health")

from endpoints.scoring_route import ScoringApplication  # noqa: E402 - Django is set up first

application = ScoringApplication(django_application)
