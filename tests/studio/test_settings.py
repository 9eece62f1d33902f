import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from studio.settings import ImproperlyConfiguredEnv, env_bool, env_int
from tests.conftest import REPO


def test_env_helpers_fail_loudly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_FLAG"):
        env_bool("X_FLAG")
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_NUM"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_FLAG", "TRUE")
    assert env_bool("X_FLAG") is True


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def _manage(args, env_overrides, tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "SECRET_KEY", "STUDIO_HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.update({"STUDIO_DATA_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_profile_passes_check_deploy(tmp_path):
    result = _manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "SECRET_KEY": "x" * 30 + "-production-secret-key-with-enough-entropy-0123456789",
            "STUDIO_HTTPS": "true",
            "ALLOWED_HOSTS": "studio.example.com",
            "DEBUG": "false",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = _manage(["shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"], {}, tmp_path)
    second = _manage(["shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"], {}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 50
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_a_bad_setting_stops_start_up_with_its_name(tmp_path):
    result = _manage(["check"], {"DEBUG": "perhaps"}, tmp_path)
    assert result.returncode != 0 and "DEBUG='perhaps'" in result.stderr


def test_passwords_are_hashed_with_argon2_first():
    from studio import settings as production

    assert production.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_processes_starting_together_share_one_generated_secret_key(tmp_path):
    # A cluster's nodes start at the same moment on a fresh data directory: none may fail on the
    # key file another one is writing, and all must read the same key.
    go = tmp_path / "go"
    script = (
        "import os, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
        "import studio.settings as s\n"
        "print(s.SECRET_KEY)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    env["STUDIO_DATA_DIR"] = str(tmp_path / "data")
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(12)
    ]
    time.sleep(1.0)  # every process imported Python and waits for the signal
    go.touch()
    results = [p.communicate(timeout=120) + (p.returncode,) for p in starts]
    assert all(code == 0 for _, _, code in results), [err[-500:] for _, err, code in results if code]
    keys = {out.strip() for out, _, _ in results}
    assert len(keys) == 1 and len(keys.pop()) >= 50
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if "secret" in p.name) == ["secret_key"]


def test_transaction_pooling_turns_server_side_cursors_off(tmp_path):
    """Behind PgBouncer in transaction mode, QuerySet.iterator must not declare server-side cursors."""
    show = "from django.conf import settings; print(settings.DATABASES['default'].get('DISABLE_SERVER_SIDE_CURSORS'))"
    url = {"DATABASE_URL": "postgres://studio@db.invalid:5432/studio"}
    pooled = _manage(["shell", "-c", show], {**url, "DB_TRANSACTION_POOLING": "true"}, tmp_path)
    direct = _manage(["shell", "-c", show], url, tmp_path)
    assert pooled.returncode == 0 and direct.returncode == 0, pooled.stderr + direct.stderr
    assert pooled.stdout.split()[-1] == "True" and direct.stdout.split()[-1] in ("None", "False")
