"""Dramatiq broker set-up and actors: thin wrappers that take ids and call ``engine``.

Production runs ``dramatiq workers.actors`` (with ``SALESCYCLE_BROKER_URL`` pointing at
Redis and ``SALESCYCLE_WORKSPACE`` at the workspace) beside ``salescycle scheduler``;
``salescycle run`` runs the same actors in-process on Dramatiq's stub broker.
"""
