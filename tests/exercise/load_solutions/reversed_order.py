"""A wrong lock order: the arguments as given, so two opposite transfers wait for each other."""


def lock_order(a, b):
    return (a, b)
