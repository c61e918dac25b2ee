"""transfer-order, wrong: the locks in the order the transfer names them."""


def lock_order(a, b):
    return (a, b)
