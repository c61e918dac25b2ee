"""What users type keeps working wherever the modules behind it live: the plain gunicorn command line documented
for running behind nginx, `from bankapp import create_app`, the `bankapp` console script and `python -m bankapp`."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bankapp.server.processes import ServerProcess

#: gunicorn's own line once it listens; with port 0 it names the port the kernel chose.
GUNICORN_LISTENING = re.compile(r"Listening at: (http://\S+)")
#: The environment of a server started from a clean shell: no BANKAPP_* variable but the ones a test sets.
CLEAN = {name: None for name in os.environ if name.startswith(("BANKAPP_", "PROMETHEUS_"))}


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_the_plain_gunicorn_command_line_serves_with_the_hardened_worker():
    command = [sys.executable, "-m", "gunicorn", "-k", "bankapp.worker.HardenedWorker", "--threads", "4"]
    command += ["-b", "127.0.0.1:0", "bankapp.wsgi:app"]
    env = {**CLEAN, "BANKAPP_GUARD": "lock", "BANKAPP_RACE_WINDOW_MS": "0"}
    with ServerProcess(command=command, ready=GUNICORN_LISTENING, env=env) as server:
        deposit = requests.post(server.url + "/accounts/acc-00/deposit", json={"amount": 5}, timeout=10)
        settings = requests.get(server.url + "/admin/config", timeout=10).json()
    assert deposit.status_code == 200, deposit.text
    assert (settings["deposit_guard"], settings["checkout_guard"]) == ("lock", "lock")  # read from BANKAPP_*
    assert "Using worker: bankapp.worker.HardenedWorker" in "".join(server.output)


def test_create_app_is_importable_from_the_package_root_in_a_fresh_interpreter():
    code = (
        "from bankapp import create_app\n"
        "client = create_app({'race_window_ms': 0}).test_client()\n"
        "print(client.post('/accounts/acc-00/deposit', json={'amount': 5}).status_code)\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in CLEAN}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip() == "200", out.stderr


@pytest.mark.parametrize("prefix", [[str(Path(sys.executable).parent / "bankapp")], [sys.executable, "-m", "bankapp"]])
def test_the_console_script_and_python_m_run_the_command_line(prefix):
    out = subprocess.run([*prefix, "urls", "--port", "8123"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "http://localhost:8123" in out.stdout
