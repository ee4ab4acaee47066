"""Every router of the API, in one list. A journey adds its router here."""

from api.routers import auth, codec, directory, health, tasks

ROUTERS = [
    health.router,
    auth.router,
    directory.router,
    tasks.router,
    codec.router,
]
