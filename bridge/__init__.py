"""scale-bridge: the daemon beside the scale (config, pairing, outbox, platform client, uploader,
simulator, health, CLI)."""

__version__ = "0.1.0"
