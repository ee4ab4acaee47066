"""Shared plumbing: settings, database, logging, payload codec, security, CLI.

Nothing in here is imported by workflow code except `core.search_attributes` and
`core.policy`, which are pure and deterministic.
"""
