"""What building the application imports: `serve run`'s build step and the ingress and
preprocessing replicas import these modules, and torch would add 1.6 s to the cold start."""

import subprocess
import sys


def test_building_the_app_does_not_import_torch():
    code = ("import sys, serve_app.app, serve_app.ingress, serve_app.preprocess; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
