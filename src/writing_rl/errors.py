"""Errors every layer raises; a leaf module (it imports nothing of ours), so any module can use them."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config, option or file the user gave cannot work: the message names it and the fix (exit 2)."""

    exit_code = 2  # `writing-rl` exit status: fix the config, option or file
