"""One module per ``scale-bridge`` subcommand; each defines ``register(subparsers)``."""
