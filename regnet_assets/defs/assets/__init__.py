"""Assets by domain: one module per asset group."""
