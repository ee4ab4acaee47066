"""Tables, API schemas and the small dataclasses that cross into workflows.

Keep this file free of imports: workflow code imports `models.policy` / `models.payloads`
modules directly and must not drag SQLModel into the workflow sandbox.
"""
