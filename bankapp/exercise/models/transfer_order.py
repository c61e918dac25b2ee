"""transfer-order, the model solution: every transfer takes the two locks in one global order."""


def lock_order(a, b):
    """The two account ids in the order to lock them: the smaller first, whichever way the money goes."""
    return (a, b) if a <= b else (b, a)
