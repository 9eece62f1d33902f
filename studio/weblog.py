"""The web server's access log, without the scoring route's answered requests.

Scoring requests come by the thousand a second and are already counted, by status and latency,
in the endpoints' monitoring. A log line each cost about 0.08 ms of every scoring request (a
tenth of the portal's part) and buried the page requests an operator reads the log for. A
scoring request that was refused or failed (4xx, 5xx) is still logged.
"""

from gunicorn.glogging import Logger

SCORING_PREFIX = "/score/"


class AccessLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if (resp.status_code or 500) < 400 and environ.get("PATH_INFO", "").startswith(SCORING_PREFIX):
            return
        super().access(resp, req, environ, request_time)
