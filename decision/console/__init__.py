"""The web console (``decision console``)."""
