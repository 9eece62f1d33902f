"""The run command collects the static files only when they changed since it last did: collectstatic
hashes and compresses every file again each time (~3 s of each start)."""

import json
import os

from django.test import override_settings

from portal.management.commands.studio import collect_static_if_changed
from studio import settings as configured


def test_static_files_are_collected_again_only_when_one_changed(tmp_path, settings):
    sources, root = tmp_path / "sources", tmp_path / "data" / "static"
    sources.mkdir()
    root.mkdir(parents=True)
    style = sources / "extra.css"
    style.write_text("body { color: black; }")
    # The storage the studio runs with (the tests' own has no manifest).
    storages = {**settings.STORAGES, "staticfiles": configured.STORAGES["staticfiles"]}
    with override_settings(STATIC_ROOT=root, STATICFILES_DIRS=[sources], STORAGES=storages):
        assert collect_static_if_changed()
        assert not collect_static_if_changed()

        written = style.stat().st_mtime_ns
        style.write_text("body { color: navy; }")
        os.utime(style, ns=(written, written))  # its time as it was (a copy that kept it): its size tells
        assert collect_static_if_changed()
        manifest = json.loads((root / "staticfiles.json").read_text())
        assert (root / manifest["paths"]["extra.css"]).read_text() == "body { color: navy; }"

        (root / "staticfiles.json").unlink()  # the collected files were removed
        assert collect_static_if_changed()
