"""Locust scenarios against bankapp, and the verdict they deliver.

Run them with `locust -f loadtests/locustfile.py`; see docs/load-testing.md. Nothing here
imports `bankapp`: Locust patches the process with gevent, and the load generator must only
know the server through HTTP.
"""
