"""Sandboxes: one SandboxSpec, several backends (bubblewrap now, Docker next)."""

from bot.adapters.sandbox.spec import ExecResult, Limits, Sandbox, SandboxBackend, SandboxSpec

__all__ = ["ExecResult", "Limits", "Sandbox", "SandboxBackend", "SandboxSpec"]
