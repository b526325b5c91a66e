"""Tools for the tool-use tests."""

import os
from pathlib import Path


def refund(order: str) -> str:
    """Refund an order in full.

    Args:
        order: the order number, like #12345
    """
    Path(os.environ["ADAPTKIT_REFUND_MARKER"]).write_text(order)  # the side effect that must never happen unconfirmed
    return f"refunded {order}"


def shipping_days(country: str, express: bool = False) -> int:
    """Days to deliver to a country.

    Args:
        country: ISO country code such as US or CA
        express: express shipping
    """
    return 2 if express else (4 if country == "US" else 7)
