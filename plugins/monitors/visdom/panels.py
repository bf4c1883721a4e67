"""What a Visdom image or text window shows, and the window ids kitpose uses.

Kept free of heavy imports: the training thread creates panels, the sender
thread sends them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass
class Panel:
    """An image or text window: what to show and where."""

    win: str
    kind: str  # "image" (RGB uint8 [H, W, 3]) or "text" (HTML)
    content: Any
    title: str
    caption: str = ""
    #: a text window's (width, height) in pixels, to show its whole content without scrolling
    size: tuple[int, int] | None = None


def window_id(panel: str) -> str:
    """A stable window id for a panel name (letters, digits, '_' and '-')."""
    return "kitpose_" + re.sub(r"[^A-Za-z0-9_-]", "_", panel)
