"""Add to the locustfiles to run the spike shape instead of -u/-r/-t.

locust -f loadtests/locustfile.py,loadtests/spike.py CheckoutUser --headless
"""

from loadtests.shapes import SpikeShape

__all__ = ["SpikeShape"]
