"""The web server's WSGI application (gunicorn portal.wsgi:application): Django's, with scoring
requests answered the short way (endpoints/scoring_route.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django_application = get_wsgi_application()

from endpoints.scoring_route import ScoringApplication  # noqa: E402 - Django is set up first

application = ScoringApplication(django_application)
