"""I/O links: serial (pyserial), BLE (bleak), replay (capture files). The only place pyserial and bleak
are imported, and lazily: importing ``drivers.links`` loads neither."""

from .base import Link

__all__ = ["Link"]
