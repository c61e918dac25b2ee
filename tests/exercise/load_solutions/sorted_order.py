"""A correct lock order: every transfer climbs the same ladder."""


def lock_order(a, b):
    return (a, b) if a <= b else (b, a)
