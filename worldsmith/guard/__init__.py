"""Guardrails: the pre-guard on prompts (a maintained blocklist, a classifier worldsmith trains, an optional LLM
judge), the post-guard on videos (NudeNet on sampled frames, every face blurred), and an audit log of every decision.

Entry points (``generate``, ``batch``, the server) go through ``rails.Guardrails``; the parts are usable alone:
``prompt.PromptGuard``, ``video.VideoGuard``, ``audit.AuditLog``. Every verdict is a ``verdict.Verdict``.
"""
