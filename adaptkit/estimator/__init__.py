"""Hardware probing and (later) memory and compute estimates. Pure Python, no torch."""
