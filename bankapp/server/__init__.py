"""The server: gunicorn running the app, and the server as a child process.

- `launcher`: `bankapp serve`'s gunicorn application, configured from `Config`
- `worker`: `HardenedWorker`, gunicorn's gthread worker hardened against slow clients
- `shutdown`: how a worker stops, and what it says as it goes
- `wsgi`: the app of a plain `gunicorn bankapp.wsgi:app`, settings from `BANKAPP_*`
- `processes`: `ServerProcess`, the server as a child process on a free port, stopped
  by PID (compare, the tests, the benchmarks and the examples start it so)

Nothing is imported here: `processes` needs neither gunicorn nor Flask.
"""
