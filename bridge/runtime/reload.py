"""SIGHUP: the new config applied as a value. ``bridge.reload.plan`` says which keys may change live;
the parts that read them get the new frozen sub-configs; every key that needs a restart is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import sd_notify
from ..config import Config, load_config
from ..errors import ConfigError
from ..pairing import Pairing
from ..reload import plan as reload_plan
from ..upload.loop import Uploader
from .pump import Pump


def reload(cfg: Config, path: str | Path, *, uploader: Uploader | None, pump: Pump | None, log: Any) -> Config:
    """The config to run with after a SIGHUP (the old one if the file is not valid)."""
    sd_notify.reloading()
    try:
        new = load_config(path)
    except ConfigError as exc:
        log.error("reload_rejected", problems=exc.lines(), action="keeping the running config")
        sd_notify.ready()
        return cfg
    applied = reload_plan(cfg, new)
    if uploader is not None:
        uploader.apply(applied.config)
    if pump is not None:
        pairing = pump.intake.pairing
        pairing.window = Pairing(applied.config.pairing.window_s).window
        pairing.policy = applied.config.pairing.unidentified
    if applied.restart:
        log.warning("reload_partial", needs_restart=list(applied.restart), action="restart the service to apply these")
    log.info("config_reloaded", applied=list(applied.live))
    sd_notify.ready()
    return applied.config
