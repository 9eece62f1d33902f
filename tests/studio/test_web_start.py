"""A web process imports its views as it starts, not in the first request it answers: the URLconf
reaches the training app and its ML libraries (seconds), which a user's first page after a start
waited for, on each web process."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO

WEB_START = """
import json, sys
import portal.wsgi
print(json.dumps({"urlconf": "portal.urls" in sys.modules, "views": "training.api.automl_views" in sys.modules}))
"""


def test_a_web_process_has_its_views_loaded_before_its_first_request(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")},
        "DJANGO_SETTINGS_MODULE": "studio.settings",
        "STUDIO_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", WEB_START], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"urlconf": True, "views": True}
