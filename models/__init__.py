"""Tables and API schemas (SQLModel / pydantic). The dataclasses that cross into workflows
are the journeys' contracts, in the `contracts` package.

Keep this file free of imports: importing one model must not drag in the others.
"""
