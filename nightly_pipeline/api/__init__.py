"""The admin API: kick off and watch tenant nights over HTTP, with tokens, roles and an audit trail.

``nightly-pipeline api serve`` runs it under uvicorn; ``nightly-pipeline api token …`` manages its
tokens and ``nightly-pipeline api audit`` lists what it did and refused.
"""
