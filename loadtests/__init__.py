"""Locust scenarios against bankapp, and the verdict they deliver.

Run them with `locust -f loadtests/locustfile.py`; see the README's "Load
testing". Nothing here imports `bankapp`: Locust patches the process with
gevent, and the load generator must only know the server through HTTP.
"""
